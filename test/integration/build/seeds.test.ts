import { existsSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type ContextSpec, writeContext } from "../../helpers/build.js";
import { strata, tempDir } from "../../helpers/cli.js";
import { type Dockerd, startDockerd } from "../../helpers/dockerd.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";
import { flatten, readDockerArchive } from "../../helpers/image-tree.js";
import { requires } from "../../helpers/tools.js";

/**
 * The Dockerfile examples of ../shared/seeds/ built with Strata on the local busybox base,
 * each run by dockerd (strata save | docker load | docker run --network none) or exported
 * with -o type=local, and its Config checked with strata inspect. Package managers (pip,
 * npm, go build) are replaced by shell commands that make the same kind of files.
 */
const need = requires({ tools: ["dockerd", "runc"], root: true });

describe.runIf(need.ok)("the seeds' Dockerfile examples build and run", () => {
  const t = tempDir("strata-seeds-");
  const root = path.join(t.dir, "store");
  let d: Dockerd;

  /** Build a context with Strata; returns the image's inspect record. */
  const build = async (name: string, files: ContextSpec, tag: string, flags: string[] = []) => {
    const ctx = path.join(t.dir, name);
    writeContext(ctx, files);
    const r = await strata(root, ["build", "--progress", "plain", "-t", tag, ...flags, ctx]);
    expect(r.code, r.stderr).toBe(0);
    const ins = await strata(root, ["inspect", tag]);
    expect(ins.code, ins.stderr).toBe(0);
    return JSON.parse(ins.stdout)[0];
  };
  /** strata save | docker load. */
  const load = async (tag: string) => {
    const archive = path.join(t.dir, `${tag.replace(/[:/]/g, "_")}.tar`);
    const s = await strata(root, ["save", "-o", archive, tag]);
    expect(s.code, s.stderr).toBe(0);
    const l = await d.docker(["load", "-i", archive]);
    expect(l.stdout).toContain(`Loaded image: ${tag}`);
    return archive;
  };
  const run = async (args: string[]) =>
    (await d.docker(["run", "--rm", "--network", "none", ...args])).stdout;

  beforeAll(async () => {
    d = await startDockerd();
    const r = await strata(root, ["import", busyboxRootfs(), "base:1"]);
    expect(r.code, r.stderr).toBe(0);
  }, 180_000);
  afterAll(async () => {
    await d?.stop();
    t.cleanup();
  });

  it("Flask-style Python app (000 §6.1, §9, §15): WORKDIR, requirements first, COPY . ., EXPOSE, CMD", async () => {
    const img = await build(
      "flask",
      {
        Dockerfile: `FROM base:1

WORKDIR /app

COPY requirements.txt .
RUN mkdir -p /usr/local/lib/python/site-packages /usr/local/bin \\
 && for r in $(cat requirements.txt); do echo "$r" > "/usr/local/lib/python/site-packages/\${r%%==*}"; done \\
 && printf '#!/bin/sh\\nexec sh "$@"\\n' > /usr/local/bin/python && chmod 755 /usr/local/bin/python

COPY . .

EXPOSE 5000
CMD ["python", "app.py"]
`,
        "requirements.txt": "flask==3.0.0\n",
        "app.py":
          'echo "Hello from flask-hello"\necho "packages: $(ls /usr/local/lib/python/site-packages)"\n',
        ".dockerignore": ".git\n*.log\n__pycache__/\n.env\n",
        ".env": "SECRET=1\n",
        "debug.log": "noise\n",
        "__pycache__/app.cpython-311.pyc": "bytecode\n",
      },
      "flask-hello:1.0",
    );
    expect(img.Config.Cmd).toEqual(["python", "app.py"]);
    expect(img.Config.WorkingDir).toBe("/app");
    expect(img.Config.ExposedPorts).toEqual({ "5000/tcp": {} });
    expect(img.RepoTags).toEqual(["flask-hello:1.0"]);
    await load("flask-hello:1.0");
    expect(await run(["flask-hello:1.0"])).toBe("Hello from flask-hello\npackages: flask\n");
    // .dockerignore kept .env, logs and __pycache__ out of COPY . .
    expect(await run(["flask-hello:1.0", "ls", "-A", "/app"])).toBe(
      ".dockerignore\nDockerfile\napp.py\nrequirements.txt\n",
    );
  });

  it("Node app (000 §7, §14.2): package*.json first, npm install, a non-root USER", async () => {
    const img = await build(
      "node",
      {
        Dockerfile: `FROM base:1

# Create user (busybox-static has no addgroup/adduser applets: the same two lines they write)
RUN echo 'nodeapp:x:1001:1001::/home/nodeapp:/bin/sh' >> /etc/passwd && echo 'nodeapp:x:1001:' >> /etc/group

WORKDIR /app
COPY package*.json ./

RUN mkdir -p /usr/local/bin node_modules/express \\
 && echo '{"name":"express"}' > node_modules/express/package.json \\
 && printf '#!/bin/sh\\n[ "$1" = start ] && exec sh /app/server.js\\necho "npm: unknown command $1"; exit 1\\n' > /usr/local/bin/npm \\
 && chmod 755 /usr/local/bin/npm

COPY . .

USER nodeapp

EXPOSE 3000
CMD ["npm", "start"]
`,
        "package.json": '{"name":"web","dependencies":{"express":"^4"}}\n',
        "package-lock.json": '{"lockfileVersion":3}\n',
        "server.js": 'echo "listening on 3000 as $(id -un) ($(id -u)), modules: $(ls /app/node_modules)"\n',
        ".dockerignore": "node_modules\n",
        "node_modules/left-pad/index.js": "local junk\n",
      },
      "node-web:1",
    );
    expect(img.Config.User).toBe("nodeapp");
    expect(img.Config.Cmd).toEqual(["npm", "start"]);
    expect(img.Config.ExposedPorts).toEqual({ "3000/tcp": {} });
    await load("node-web:1");
    const out = await run(["node-web:1"]);
    expect(out).toBe("listening on 3000 as nodeapp (1001), modules: express\n");
    // COPY . . wrote the files as root (no --chown), so the non-root user cannot change them.
    expect(await run(["node-web:1", "sh", "-c", "echo x >> /app/server.js 2>/dev/null || echo denied"])).toBe(
      "denied\n",
    );
  });

  it("Go-style multi-stage (000 §8): COPY --from=builder, only the binary in the final image, ENTRYPOINT", async () => {
    const img = await build(
      "go",
      {
        Dockerfile: `# Stage 1 – Build
FROM base:1 AS builder

WORKDIR /src
COPY . .
RUN { echo '#!/bin/sh'; cat main.go; } > myapp && chmod 755 myapp

# Stage 2 – Runtime
FROM base:1

WORKDIR /app
COPY --from=builder /src/myapp .

EXPOSE 8080
ENTRYPOINT ["./myapp"]
`,
        "main.go": 'echo "hello from myapp: $*"\n',
        "go.mod": "module example.com/myapp\n",
      },
      "goapp:1",
    );
    expect(img.Config.Entrypoint).toEqual(["./myapp"]);
    expect(img.Config.Cmd).toBeNull();
    expect(img.Config.WorkingDir).toBe("/app");
    const archive = await load("goapp:1");
    const [saved] = await readDockerArchive(archive);
    const tree = await flatten(saved!.layers);
    expect(tree.get("app/myapp")).toMatchObject({ type: "file", mode: 0o755 });
    expect(tree.has("src")).toBe(false);
    expect(await run(["goapp:1"])).toBe("hello from myapp: \n");
    expect(await run(["goapp:1", "--port", "8080"])).toBe("hello from myapp: --port 8080\n");
    // The same build with -o type=local: the final filesystem in a directory.
    const out = path.join(t.dir, "go-out");
    const r = await strata(root, ["build", "-q", "-o", `type=local,dest=${out}`, path.join(t.dir, "go")]);
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(path.join(out, "app/myapp")).mode & 0o777).toBe(0o755);
    expect(readFileSync(path.join(out, "app/myapp"), "utf8")).toBe(
      '#!/bin/sh\necho "hello from myapp: $*"\n',
    );
    expect(existsSync(path.join(out, "src"))).toBe(false);
    expect(existsSync(path.join(out, "bin/busybox"))).toBe(true);
  });

  it("Go-style multi-stage (001 §3.7): binary into a missing /usr/local/bin, found on PATH by CMD", async () => {
    const img = await build(
      "go2",
      {
        Dockerfile: `# Stage 1: Build
FROM base:1 as builder
WORKDIR /app
COPY . .
RUN { echo '#!/bin/sh'; cat main.go; } > myapp && chmod +x myapp

# Stage 2: Production
FROM base:1
COPY --from=builder /app/myapp /usr/local/bin/myapp
CMD ["myapp"]
`,
        "main.go": 'echo "myapp on PATH=$PATH"\n',
      },
      "goapp:2",
    );
    expect(img.Config.Cmd).toEqual(["myapp"]);
    expect(img.RootFS.Layers).toHaveLength(2);
    await load("goapp:2");
    expect(await run(["goapp:2"])).toBe(
      "myapp on PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n",
    );
  });

  // The binary is busybox, which picks its applet by its own name: it keeps the name "busybox".
  it("FROM scratch + a static binary (000 §4.2): one layer, one file", async () => {
    const img = await build(
      "scratch",
      {
        Dockerfile: `FROM base:1 AS build
RUN mkdir /out && cp /bin/busybox /out/busybox

FROM scratch
COPY --from=build /out/busybox /busybox
ENTRYPOINT ["/busybox"]
CMD ["echo", "hello from scratch"]
`,
      },
      "scratch-app:1",
    );
    expect(img.Config.Entrypoint).toEqual(["/busybox"]);
    expect(img.Config.Cmd).toEqual(["echo", "hello from scratch"]);
    expect(img.RootFS.Layers).toHaveLength(1);
    const archive = await load("scratch-app:1");
    const [saved] = await readDockerArchive(archive);
    expect([...(await flatten(saved!.layers)).keys()]).toEqual(["busybox"]);
    expect(await run(["scratch-app:1"])).toBe("hello from scratch\n");
    expect(await run(["scratch-app:1", "ls", "/"])).toMatch(/busybox/);
  });

  it("ENTRYPOINT + CMD (001 §3.6): CMD is the default argument, run arguments replace it, --entrypoint overrides", async () => {
    const img = await build(
      "entry",
      {
        Dockerfile: `FROM base:1
ENTRYPOINT ["echo"]
CMD ["hello"]
`,
      },
      "myimage:1",
    );
    expect(img.Config.Entrypoint).toEqual(["echo"]);
    expect(img.Config.Cmd).toEqual(["hello"]);
    await load("myimage:1");
    expect(await run(["myimage:1"])).toBe("hello\n");
    expect(await run(["myimage:1", "hi"])).toBe("hi\n");
    expect(await run(["--entrypoint", "sh", "myimage:1", "-c", "echo overridden"])).toBe("overridden\n");
  });

  it("history and layers as the seeds describe them (002): one layer per filesystem step, 0B metadata steps", async () => {
    const h = await strata(root, [
      "history",
      "--no-trunc",
      "--format",
      "{{.CreatedBy}}\t{{.Size}}",
      "flask-hello:1.0",
    ]);
    expect(h.code, h.stderr).toBe(0);
    const rows = h.stdout.trimEnd().split("\n");
    expect(rows[0]).toBe('CMD ["python" "app.py"]\t0B');
    expect(rows[1]).toBe("EXPOSE map[5000/tcp:{}]\t0B");
    expect(rows[2]).toMatch(/^COPY \. \. # buildkit\t\d/);
    expect(rows.some((r) => r.startsWith("WORKDIR /app\t"))).toBe(true);
    const dockerHistory = (
      await d.docker(["history", "--no-trunc", "--format", "{{.CreatedBy}}", "flask-hello:1.0"])
    ).stdout;
    // The same history through dockerd (the base's import step has no CREATED BY: an empty last line).
    expect(dockerHistory.split("\n").slice(0, -1)).toEqual(rows.map((r) => r.split("\t")[0]));
  });
});
