import { execFileSync } from "node:child_process";
import { mkdirSync, symlinkSync, writeFileSync } from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata, tempDir } from "../helpers/cli.js";
import { type Dockerd, startDockerd } from "../helpers/dockerd.js";
import { busyboxRootfs } from "../helpers/fixtures.js";
import {
  flatten,
  listing,
  readDockerArchive,
  type Tree,
  treeDiff,
  treeOfTar,
} from "../helpers/image-tree.js";
import { requires } from "../helpers/tools.js";

/**
 * The same Dockerfile built by Strata and by dockerd 20.10's BuildKit (DOCKER_BUILDKIT=1;
 * the classic builder lacks --chmod and RUN --mount), from the same base image (Strata's
 * `save` of it, `docker load`ed): the final file trees and the Config must be equal.
 *
 * Compared: every path of the flattened image (both `save` archives, layers applied with
 * their whiteouts) with its type, permission bits, uid/gid, content digest and symlink
 * target; Config.Env, Cmd, Entrypoint, WorkingDir, User, ExposedPorts, Volumes, Labels,
 * StopSignal, Healthcheck, OnBuild and Shell.
 *
 * Excluded, each a legitimate build-time artifact or a difference of BuildKit versions:
 * - EXCLUDED_TIMES: modification times of every path (a build stamps the time it ran).
 * - EXCLUDED_MOUNT_STUBS: empty directories BuildKit 0.8 (dockerd 20.10) leaves in a RUN
 *   layer where a `RUN --mount` target or the runtime's /proc, /dev, /sys, /etc/hosts,
 *   /etc/resolv.conf mount points did not exist. Current BuildKit removes them, and so does
 *   Strata; the case that has them lists the exact paths.
 * - EXCLUDED_HEREDOC_SYNTAX: dockerd 20.10's built-in Dockerfile frontend predates heredocs
 *   (and no `# syntax=` frontend image can be pulled offline), so Docker builds a
 *   heredoc-free spelling of the same steps and the trees are compared.
 * - Created, history timestamps and the image ID follow from the times, so they differ too.
 */
const need = requires({ tools: ["dockerd", "runc"], root: true });

interface ContextFile {
  data?: string;
  mode?: number;
  symlink?: string;
  dir?: boolean;
}

interface Case {
  name: string;
  files?: Record<string, string | ContextFile>;
  dockerfile: string;
  /** Docker's spelling where its 0.8 frontend lacks the syntax (EXCLUDED_HEREDOC_SYNTAX). */
  dockerDockerfile?: string;
  /** Flags for both builders (a function: computed when the case runs). */
  flags?: string[] | (() => string[]);
  /** Extra context preparation (archives made with tar). */
  setup?: (ctx: string) => void;
  /** Build these targets one after the other (each compared); default the last stage. */
  targets?: string[];
  /** Images both builders must have built first (from the same context). */
  parents?: { tag: string; dockerfile: string }[];
  /** Paths Docker's image has and Strata's must not (EXCLUDED_MOUNT_STUBS). */
  dockerOnly?: string[];
  /** What this case must show in Strata's image, so that it cannot pass vacuously. */
  expect: (tree: Tree, config: Record<string, unknown>) => void;
}

const CONFIG_FIELDS = [
  "Env",
  "Cmd",
  "Entrypoint",
  "WorkingDir",
  "User",
  "ExposedPorts",
  "Volumes",
  "Labels",
  "StopSignal",
  "Healthcheck",
  "OnBuild",
  "Shell",
] as const;

/** The compared Config fields; absent, null, "" and {} are the same (Go's omitempty). */
function pickConfig(cfg: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const f of CONFIG_FIELDS) {
    const v = cfg?.[f];
    const empty =
      v === undefined ||
      v === null ||
      v === "" ||
      (typeof v === "object" && !Array.isArray(v) && Object.keys(v).length === 0) ||
      (f === "OnBuild" && Array.isArray(v) && v.length === 0);
    out[f] = empty ? null : v;
  }
  return out;
}

const file = (t: Tree, p: string) => t.get(p.replace(/^\//, ""));

/** The http server ADD <url> cases download from (both builders reach it on the host). */
let httpBase = "";

const CASES: Case[] = [
  {
    name: "scratch-static",
    dockerfile: `FROM base:1 AS tools
RUN mkdir -p /out && cp /bin/busybox /out/busybox && echo built > /out/stamp
FROM scratch
COPY --from=tools /out/busybox /bin/busybox
COPY --from=0 /out/stamp /stamp
ENTRYPOINT ["/bin/busybox"]
CMD ["echo", "static"]
`,
    expect: (t, c) => {
      expect([...t.keys()].sort()).toEqual(["bin", "bin/busybox", "stamp"]);
      expect(c.Entrypoint).toEqual(["/bin/busybox"]);
    },
  },
  {
    name: "run-forms",
    dockerfile: `FROM base:1
ENV GREETING=hello
ARG WHO=world
WORKDIR /work
RUN echo "$GREETING $WHO" > shell.txt
RUN ["/bin/sh", "-c", "echo exec $GREETING > /work/exec.txt"]
SHELL ["/bin/sh", "-ec"]
RUN echo "pwd=$(pwd)" > pwd.txt
WORKDIR sub
RUN pwd > /work/sub.txt
USER app
RUN id -u > /tmp/uid.txt && touch /tmp/owned
USER root
RUN echo root >> /work/shell.txt && mkdir -m 0750 /work/private && chmod 4755 /work/private
`,
    expect: (t, c) => {
      expect(file(t, "/tmp/owned")).toMatchObject({ type: "file", uid: 1000, gid: 1000 });
      expect(file(t, "/work/private")).toMatchObject({ type: "dir", mode: 0o4755 });
      expect(c.Shell).toEqual(["/bin/sh", "-ec"]);
      expect(c.WorkingDir).toBe("/work/sub");
    },
  },
  {
    name: "copy-rules",
    files: {
      "a.txt": "a\n",
      "b.txt": "b\n",
      "c.md": "c\n",
      "exe.sh": { data: "#!/bin/sh\necho hi\n", mode: 0o755 },
      "dir/x": "x\n",
      "dir/sub/y": "y\n",
      "dir/link": { symlink: "x" },
      "dir/dangling": { symlink: "../nowhere" },
      "empty-dir": { dir: true },
      "ro.txt": { data: "ro\n", mode: 0o400 },
    },
    dockerfile: `FROM base:1
WORKDIR /app
COPY *.txt /globbed/
COPY dir /dircontents
COPY dir/ /dirslash/
COPY a.txt /renamed
COPY a.txt /tmp
COPY exe.sh c.md ./
COPY dir/sub ./sub
COPY empty-dir /empty
COPY d?r/s* /globdir/
COPY . /all/
COPY ["a.txt", "/json form/"]
`,
    expect: (t) => {
      expect(file(t, "/tmp/a.txt")?.type).toBe("file");
      expect(file(t, "/dircontents/link")).toMatchObject({ type: "symlink", link: "x" });
      expect(file(t, "/app/exe.sh")?.mode).toBe(0o755);
      expect(file(t, "/globdir/y")?.type).toBe("file");
      expect(file(t, "/json form/a.txt")?.type).toBe("file");
    },
  },
  {
    name: "copy-chown-chmod",
    files: { "a.txt": "a\n", "dir/x": "x\n", "dir/sub/y": "y\n" },
    dockerfile: `FROM base:1
COPY --chown=app:app a.txt /o/named
COPY --chown=1000:1000 a.txt /o/numeric
COPY --chown=app a.txt /o/useronly
COPY --chown=65534:app dir /o/dir
COPY --chmod=640 a.txt /o/chmod
COPY --chmod=755 dir /o/chmoddir
COPY --chown=app --chmod=600 a.txt /newparent/deep/f
`,
    expect: (t) => {
      expect(file(t, "/o/named")).toMatchObject({ uid: 1000, gid: 1000 });
      expect(file(t, "/o/dir/sub/y")).toMatchObject({ uid: 65534, gid: 1000 });
      expect(file(t, "/o/chmod")?.mode).toBe(0o640);
    },
  },
  {
    name: "add-local",
    files: { "a.txt": "a\n", "dir/x": "x\n", "dir/sub/y": "y\n" },
    dockerfile: `FROM base:1
ADD a.txt /added/
ADD dir /addeddir
ADD --chown=app:app a.txt /addedowned
`,
    expect: (t) => {
      expect(file(t, "/added/a.txt")?.type).toBe("file");
      expect(file(t, "/addeddir/sub/y")?.type).toBe("file");
      expect(file(t, "/addedowned")).toMatchObject({ uid: 1000 });
    },
  },
  {
    name: "metadata",
    flags: ["--label", "from.flag=yes"],
    dockerfile: `FROM base:1
ENV A=1 B="two words" C=\${A}-x
ENV D old form value
LABEL org.example.a=1 "org.example.b"="with space" multi=a\\ b
LABEL version=\${A}
EXPOSE 80 443/udp 8080/tcp
USER app:app
VOLUME /data
VOLUME ["/logs", "/cache"]
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --timeout=3s --start-period=1s --retries=4 CMD wget -q -O- localhost || exit 1
CMD echo "$A"
`,
    expect: (_t, c) => {
      expect(c.Env).toContain("D=old form value");
      // One ENV's words see the environment before it (A is not set yet).
      expect(c.Env).toContain("C=-x");
      expect(c.Labels).toMatchObject({ "from.flag": "yes", multi: "a b", version: "1" });
      expect(c.StopSignal).toBe("SIGQUIT");
      expect((c.Healthcheck as { Retries: number }).Retries).toBe(4);
    },
  },
  {
    name: "entrypoint-cmd",
    targets: ["reset", "both", "nohealth", "shellform"],
    dockerfile: `FROM base:1 AS withcmd
CMD ["sh", "-c", "echo inherited"]
FROM withcmd AS reset
ENTRYPOINT ["echo"]
FROM withcmd AS both
ENTRYPOINT ["echo", "entry"]
CMD ["arg"]
FROM withcmd AS nohealth
HEALTHCHECK --interval=1m CMD true
HEALTHCHECK NONE
FROM reset AS shellform
ENTRYPOINT echo shell "$HOME"
`,
    expect: (_t, c) => {
      expect(c.Entrypoint).toEqual(["/bin/sh", "-c", 'echo shell "$HOME"']);
      expect(c.Cmd ?? null).toBeNull();
    },
  },
  {
    name: "args",
    flags: ["--build-arg", "V=given", "--build-arg", "UNDECLARED=z"],
    dockerfile: `ARG BASE=base:1
ARG UNUSED=x
FROM \${BASE}
ARG BASE
ARG V=default
ARG W=wdefault
ENV FROM_ARG=$V
LABEL base=$BASE w=$W
RUN echo "$V $W $BASE" > /args.txt
`,
    expect: (t, c) => {
      expect(c.Env).toContain("FROM_ARG=given");
      expect(file(t, "/args.txt")?.type).toBe("file");
    },
  },
  {
    name: "onbuild",
    files: { "trigger.txt": "from the trigger\n" },
    parents: [
      {
        tag: "eq-onbuild-parent:1",
        dockerfile: `FROM base:1
ONBUILD COPY trigger.txt /from-trigger.txt
ONBUILD RUN echo ran > /onbuild-ran
ONBUILD ENV TRIGGERED=yes
LABEL parent=1
`,
      },
    ],
    dockerfile: `FROM eq-onbuild-parent:1
RUN test -f /from-trigger.txt && echo "child $TRIGGERED" > /child
`,
    expect: (t, c) => {
      expect(file(t, "/from-trigger.txt")?.type).toBe("file");
      expect(file(t, "/onbuild-ran")?.type).toBe("file");
      expect(c.Env).toContain("TRIGGERED=yes");
    },
  },
  {
    name: "heredocs",
    dockerfile: `FROM base:1
RUN <<EOF
mkdir -p /h
echo one > /h/run.txt
echo two >> /h/run.txt
EOF
COPY <<EOF /h/copied.conf
key=value
EOF
COPY <<A <<B /h/multi/
a
A
b
B
RUN <<EOF sh
echo "from sh" > /h/sh.txt
EOF
RUN <<EOF
#!/bin/sh
echo shebang > /h/shebang.txt
EOF
RUN <<-EOF
\techo chomped > /h/chomp.txt
\tEOF
`,
    dockerDockerfile: `FROM base:1
RUN mkdir -p /h && echo one > /h/run.txt && echo two >> /h/run.txt
RUN printf 'key=value\\n' > /h/copied.conf
RUN mkdir -p /h/multi && printf 'a\\n' > /h/multi/A && printf 'b\\n' > /h/multi/B
RUN echo "from sh" > /h/sh.txt
RUN echo shebang > /h/shebang.txt
RUN echo chomped > /h/chomp.txt
`,
    expect: (t) => {
      expect(listing(t, "/h")).toHaveLength(8);
      expect(file(t, "/h/copied.conf")).toMatchObject({ type: "file", mode: 0o644 });
    },
  },
  {
    name: "multistage-target",
    flags: ["--target", "build", "--platform", "linux/amd64"],
    dockerfile: `FROM --platform=$BUILDPLATFORM base:1 AS base
RUN echo base > /base.txt
FROM base AS build
RUN echo build > /build.txt
FROM base AS test
RUN exit 1
FROM build AS final
RUN exit 1
`,
    expect: (t) => {
      expect(file(t, "/build.txt")?.type).toBe("file");
      expect(file(t, "/base.txt")?.type).toBe("file");
    },
  },
  {
    name: "dockerignore",
    files: {
      ".dockerignore": "*.log\nsecret/\n!keep.log\n**/*.tmp\nDockerfile\n",
      "app.js": "app\n",
      "a.log": "log\n",
      "keep.log": "keep\n",
      "secret/key": "k\n",
      "src/x.tmp": "tmp\n",
      "src/y.js": "y\n",
    },
    dockerfile: `FROM base:1
COPY . /app
`,
    expect: (t) => {
      expect(listing(t, "/app").map((l) => l.split(" ")[0])).toEqual([
        "/app/.dockerignore",
        "/app/app.js",
        "/app/keep.log",
        "/app/src",
        "/app/src/y.js",
      ]);
    },
  },
  {
    name: "whiteouts",
    files: { "a.txt": "a\n" },
    dockerfile: `FROM base:1
RUN rm /etc/hostname && rm -r /home/app && mkdir -p /var/lib/x && echo 1 > /var/lib/x/f
RUN rm -rf /var/lib/x && mkdir /var/lib/x && echo 2 > /var/lib/x/g
RUN rm /bin/vi && ln -s /bin/busybox /usr/bin/vi2 && ln /bin/busybox /hardlinked
COPY a.txt /etc/hostname
RUN rm -rf /root && echo file > /root
`,
    expect: (t) => {
      expect(file(t, "/home/app")).toBeUndefined();
      expect(file(t, "/var/lib/x/f")).toBeUndefined();
      expect(file(t, "/bin/vi")).toBeUndefined();
      expect(file(t, "/root")?.type).toBe("file");
      expect(file(t, "/hardlinked")?.digest).toBe(file(t, "/bin/busybox")?.digest);
    },
  },
  {
    name: "run-mounts",
    files: { "a.txt": "a\n", "dir/x": "x\n" },
    dockerfile: `FROM base:1
RUN --mount=type=bind,target=/ctx cp /ctx/a.txt /from-bind.txt
RUN --mount=type=bind,source=dir,target=/d cat /d/x > /from-bind-dir.txt
RUN --mount=type=cache,target=/var/cache/c echo x > /var/cache/c/f && ls /var/cache/c > /cache-list.txt
RUN --mount=type=tmpfs,target=/scratch echo y > /scratch/t && ls /scratch > /tmpfs-list.txt
`,
    dockerOnly: ["ctx", "d", "var/cache", "var/cache/c", "scratch"],
    expect: (t) => {
      expect(file(t, "/from-bind-dir.txt")?.type).toBe("file");
      expect(file(t, "/var/cache/c")).toBeUndefined();
      expect(file(t, "/scratch")).toBeUndefined();
    },
  },
  {
    name: "workdir-user",
    files: { "a.txt": "a\n" },
    dockerfile: `FROM base:1
USER app
WORKDIR /srv/app
WORKDIR data
COPY a.txt .
USER root
WORKDIR ../../other
RUN pwd > /pwd.txt
`,
    expect: (t, c) => {
      expect(file(t, "/srv/app/data/a.txt")?.type).toBe("file");
      expect(c.WorkingDir).toBe("/srv/other");
    },
  },
  {
    name: "copy-from-image-and-stage",
    dockerfile: `FROM base:1 AS st
RUN mkdir -p /out/d && echo x > /out/d/f && ln -s f /out/d/l && chmod 600 /out/d/f && chown 1000:1000 /out/d/f
FROM scratch
COPY --from=base:1 /etc/passwd /etc/group /etc/
COPY --from=st /out /
COPY --from=st /out/d /copied-d
COPY --from=st /out/d/l /copied-link
`,
    expect: (t) => {
      expect(file(t, "/etc/passwd")?.type).toBe("file");
      expect(file(t, "/d/f")).toMatchObject({ mode: 0o600, uid: 1000 });
      // A source that is a symlink is followed; links inside a copied directory stay links.
      expect(file(t, "/copied-link")).toMatchObject({ type: "file", mode: 0o600 });
      expect(file(t, "/d/l")).toMatchObject({ type: "symlink", link: "f" });
    },
  },
  {
    name: "add-archives",
    files: { "hello.txt": "hello\n", "existing/keep": "k\n" },
    setup: (ctx) => {
      const src = path.join(ctx, "..", "archive-src");
      writeContext(src, {
        "a.txt": "a\n",
        "sub/b.txt": "b\n",
        "sub/deep/c.sh": { data: "#!/bin/sh\n", mode: 0o4755 },
        link: { symlink: "a.txt" },
      });
      execFileSync("ln", [path.join(src, "a.txt"), path.join(src, "hard")]);
      const tar = (out: string, ...flags: string[]) =>
        execFileSync("tar", [
          "--sort=name",
          "--owner=1000",
          "--group=1000",
          "--numeric-owner",
          ...flags,
          "-C",
          src,
          "-f",
          path.join(ctx, out),
          "-c",
          ".",
        ]);
      tar("app.tar.gz", "-z");
      tar("app.tar.bz2", "-j");
      tar("app.tar.xz", "-J");
      execFileSync("tar", [
        "--owner=0",
        "--group=0",
        "-C",
        src,
        "-cf",
        path.join(ctx, "plain.tar"),
        "a.txt",
        "sub",
      ]);
      execFileSync("sh", [
        "-c",
        `gzip -c ${path.join(ctx, "hello.txt")} > ${path.join(ctx, "hello.txt.gz")}`,
      ]);
    },
    dockerfile: `FROM base:1
ADD app.tar.gz /gz/
ADD app.tar.bz2 /bz
ADD app.tar.xz /xz/
ADD plain.tar hello.txt.gz /multi/
ADD --chown=app:app app.tar.gz /owned/
COPY existing /existing
ADD plain.tar /existing
WORKDIR /w
ADD app.tar.gz .
`,
    expect: (t) => {
      expect(file(t, "/gz/sub/deep/c.sh")).toMatchObject({
        type: "file",
        mode: 0o4755,
        uid: 1000,
        gid: 1000,
      });
      expect(file(t, "/gz/hard")?.digest).toBe(file(t, "/gz/a.txt")?.digest);
      expect(file(t, "/xz/link")).toMatchObject({ type: "symlink", link: "a.txt" });
      expect(file(t, "/multi/hello.txt.gz")?.type).toBe("file");
      expect(file(t, "/owned/sub/b.txt")).toMatchObject({ uid: 1000, gid: 1000 });
      expect(file(t, "/existing/keep")?.type).toBe("file");
      expect(file(t, "/existing/sub/b.txt")?.type).toBe("file");
    },
  },
  {
    name: "add-url",
    flags: () => ["--build-arg", `BASE=${httpBase}`],
    dockerfile: `FROM base:1
ARG BASE
ADD \${BASE}/files/data.txt /dl/
ADD \${BASE}/files/data.txt /renamed.txt
ADD --chown=app:app \${BASE}/files/archive.tar.gz /dl/
WORKDIR /w
ADD \${BASE}/files/data.txt .
`,
    expect: (t) => {
      expect(file(t, "/dl/data.txt")).toMatchObject({ type: "file", mode: 0o600 });
      // A URL is never unpacked.
      expect(file(t, "/dl/archive.tar.gz")).toMatchObject({ type: "file", uid: 1000 });
      expect(file(t, "/w/data.txt")?.type).toBe("file");
    },
  },
];

function writeContext(dir: string, files: Record<string, string | ContextFile>): void {
  mkdirSync(dir, { recursive: true });
  for (const [rel, f] of Object.entries(files)) {
    const p = path.join(dir, rel);
    mkdirSync(path.dirname(p), { recursive: true });
    const spec = typeof f === "string" ? { data: f } : f;
    if (spec.dir) mkdirSync(p, { recursive: true });
    else if (spec.symlink !== undefined) symlinkSync(spec.symlink, p);
    else writeFileSync(p, spec.data ?? "", { mode: spec.mode ?? 0o644 });
  }
}

describe.runIf(need.ok)("strata build and dockerd's BuildKit make the same images", () => {
  const t = tempDir("strata-equiv-");
  const root = path.join(t.dir, "store");
  let d: Dockerd;
  let server: http.Server;

  beforeAll(async () => {
    process.env.DOCKER_BUILDKIT = "1";
    d = await startDockerd();
    server = http.createServer((req, res) => {
      const body =
        req.url === "/files/data.txt"
          ? Buffer.from("downloaded data\n")
          : req.url === "/files/archive.tar.gz"
            ? gzipSync(Buffer.alloc(1024))
            : undefined;
      if (!body) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "Content-Length": body.length, "Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT" });
      res.end(body);
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
    httpBase = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const imp = await strata(root, ["import", busyboxRootfs(), "base:1"]);
    expect(imp.code, imp.stderr).toBe(0);
    const archive = path.join(t.dir, "base.tar");
    expect((await strata(root, ["save", "-o", archive, "base:1"])).code).toBe(0);
    await d.docker(["load", "-i", archive]);
  }, 180_000);
  afterAll(async () => {
    server?.close();
    await d?.stop();
    t.cleanup();
  });

  async function buildBoth(c: Case, ctx: string, tag: string, flags: string[]) {
    const df = path.join(t.dir, `${c.name}.Dockerfile`);
    writeFileSync(df, c.dockerfile);
    const ours = await strata(root, [
      "build",
      "--progress",
      "plain",
      "--network",
      "none",
      "-f",
      df,
      "-t",
      tag,
      ...flags,
      ctx,
    ]);
    expect(ours.code, `strata build ${c.name}:\n${ours.stderr}`).toBe(0);
    const ddf = path.join(t.dir, `${c.name}.docker.Dockerfile`);
    writeFileSync(ddf, c.dockerDockerfile ?? c.dockerfile);
    await d
      .docker(["build", "--progress", "plain", "--network", "none", "-f", ddf, "-t", tag, ...flags, ctx])
      .catch((e: { stderr?: string }) => {
        throw new Error(`docker build ${c.name} failed:\n${e.stderr}`);
      });
  }

  async function images(tag: string) {
    const ours = path.join(t.dir, "ours.tar");
    const theirs = path.join(t.dir, "theirs.tar");
    const r = await strata(root, ["save", "-o", ours, tag]);
    expect(r.code, r.stderr).toBe(0);
    await d.docker(["save", "-o", theirs, tag]);
    const [a] = await readDockerArchive(ours);
    const [b] = await readDockerArchive(theirs);
    return { ours: a!, theirs: b! };
  }

  for (const c of CASES) {
    it(c.name, async () => {
      const ctx = path.join(t.dir, `ctx-${c.name}`);
      writeContext(ctx, c.files ?? {});
      c.setup?.(ctx);
      for (const p of c.parents ?? []) {
        await buildBoth(
          { ...c, name: `${c.name}-parent`, dockerfile: p.dockerfile, dockerDockerfile: undefined },
          ctx,
          p.tag,
          [],
        );
      }
      for (const target of c.targets ?? [undefined]) {
        const tag = `eq-${c.name}${target ? `-${target}` : ""}:1`;
        const flags = typeof c.flags === "function" ? c.flags() : (c.flags ?? []);
        await buildBoth(c, ctx, tag, [...flags, ...(target ? ["--target", target] : [])]);
        const { ours, theirs } = await images(tag);
        const ourTree = await flatten(ours.layers);
        const theirTree = await flatten(theirs.layers);
        const stubs = new Set(c.dockerOnly ?? []);
        for (const s of stubs) {
          expect(theirTree.get(s), `docker's stub ${s}`).toMatchObject({ type: "dir" });
          theirTree.delete(s);
        }
        expect(treeDiff(ourTree, theirTree), `file trees of ${tag}`).toEqual([]);
        const ourCfg = pickConfig(ours.config.config);
        expect(ourCfg, `Config of ${tag}`).toEqual(pickConfig(theirs.config.config));
        if (!target || target === c.targets?.at(-1)) c.expect(ourTree, ours.config.config ?? {});
      }
    });
  }

  it("-o type=tar writes the same tree as the image (whiteouts applied)", async () => {
    const out = path.join(t.dir, "fs.tar");
    const df = path.join(t.dir, "whiteouts.Dockerfile");
    const r = await strata(root, [
      "build",
      "-q",
      "-f",
      df,
      "-o",
      `type=tar,dest=${out}`,
      path.join(t.dir, "ctx-whiteouts"),
    ]);
    expect(r.code, r.stderr).toBe(0);
    const { ours } = await images("eq-whiteouts:1");
    expect(treeDiff(await treeOfTar(out), await flatten(ours.layers))).toEqual([]);
  });
});
