import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { danglingSnapshots, mountsUnder, parseProgress, writeContext } from "../../helpers/build.js";
import { STRATA_BIN, strata, tempDir } from "../../helpers/cli.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";
import { requires } from "../../helpers/tools.js";

const need = requires({ tools: ["runc"], root: true });

describe.runIf(need.ok)("build: bad input fails clearly and leaves the store as it was", () => {
  const t = tempDir("strata-build-bad-");
  const root = path.join(t.dir, "store");
  const ctx = path.join(t.dir, "ctx");
  let tagsBefore: string;

  const tags = async () =>
    (await strata(root, ["images", "-a", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]))
      .stdout;

  /** Build `dockerfile` (in its own file) with the shared context; it must fail with exit 1. */
  const fail = async (name: string, dockerfile: string, flags: string[] = []) => {
    const df = path.join(t.dir, `${name}.Dockerfile`);
    writeFileSync(df, dockerfile);
    const r = await strata(root, [
      "build",
      "--progress",
      "plain",
      "-t",
      `bad-${name}:1`,
      "-f",
      df,
      ...flags,
      ctx,
    ]);
    expect(r.code, r.stderr).toBe(1);
    expect(r.stdout).toBe("");
    return r.stderr;
  };

  /** Nothing left behind: no snapshot mounts, no active/tmp snapshot dirs, no new tag. */
  const expectClean = async () => {
    expect(mountsUnder(root)).toEqual([]);
    expect(danglingSnapshots(root)).toEqual([]);
    expect(await tags()).toBe(tagsBefore);
  };

  beforeAll(async () => {
    const r = await strata(root, ["import", busyboxRootfs(), "base:1"]);
    expect(r.code, r.stderr).toBe(0);
    writeContext(ctx, {
      "a.txt": "a\n",
      "escape-link": { symlink: "/etc/passwd" },
      "up-link": { symlink: "../outside.txt" },
    });
    writeFileSync(path.join(t.dir, "outside.txt"), "outside the context\n");
    // One good build first, so the store has layers, snapshots and cache to keep intact.
    const ok = path.join(t.dir, "ok.Dockerfile");
    writeFileSync(ok, "FROM base:1\nRUN echo ok > /ok\nCOPY a.txt /a.txt\n");
    const b = await strata(root, ["build", "-q", "-t", "good:1", "-f", ok, ctx]);
    expect(b.code, b.stderr).toBe(0);
    tagsBefore = await tags();
    expect(tagsBefore).toContain("good:1");
  });
  afterAll(() => t.cleanup());

  it("a failing RUN: Docker's message, the step's last output lines, the Dockerfile excerpt", async () => {
    const err = await fail("exit3", "FROM base:1\nRUN exit 3\n");
    expect(err).toContain(
      'ERROR: failed to solve: process "/bin/sh -c exit 3" did not complete successfully: exit code: 3',
    );
    const steps = parseProgress(err);
    expect(steps.find((s) => s.name === "[2/2] RUN exit 3")?.status).toBe("ERROR");
    const err2 = await fail("output", "FROM base:1\nRUN echo one && echo 'last words' >&2 && exit 42\n");
    expect(err2).toContain("exit code: 42");
    // The summary repeats the step's last output lines (stdout and stderr, in arrival order).
    const summary =
      /------\n > \[2\/2\] RUN echo one && echo 'last words' >&2 && exit 42:\n([\s\S]*?)------/.exec(err2);
    expect(summary?.[1]?.split("\n").filter(Boolean).sort()).toEqual(["last words", "one"]);
    expect(err2).toContain("   2 | >>> RUN echo one && echo 'last words' >&2 && exit 42");
    await expectClean();
  });

  it("a failing RUN in the middle of a multi-stage build stops it; nothing is tagged", async () => {
    const t0 = Date.now();
    const err = await fail(
      "midstage",
      "FROM base:1 AS a\nRUN echo a > /a && sleep 20\nFROM base:1 AS b\nRUN sleep 1 && echo b && false\nFROM a\nCOPY --from=b /b /b\n",
    );
    expect(err).toContain(
      'process "/bin/sh -c sleep 1 && echo b && false" did not complete successfully: exit code: 1',
    );
    // The independent stage still running is canceled, not waited for.
    expect(err, err).toMatch(/#\d+ ERROR: canceled/);
    expect(Date.now() - t0).toBeLessThan(15_000);
    await expectClean();
  });

  it("an exec-form RUN of a missing program: runc's error in the output, exit code 1 (as BuildKit)", async () => {
    const err = await fail("noexec", 'FROM base:1\nRUN ["/no/such/program"]\n');
    expect(err).toContain('process "/no/such/program" did not complete successfully: exit code: 1');
    expect(err).toMatch(/exec: \\?"\/no\/such\/program\\?".*no such file or directory/);
    await expectClean();
  });

  it("COPY of a source outside the context: never read, a clear error", async () => {
    expect(await fail("dotdot", "FROM base:1\nCOPY ../outside.txt /x\n")).toContain(
      "forbidden path outside the build context: ../outside.txt",
    );
    // Symlinks are followed inside the context only: an absolute target is the context's /etc/passwd.
    expect(await fail("abslink", "FROM base:1\nCOPY escape-link /x\n")).toContain(
      '"/escape-link": not found',
    );
    expect(await fail("uplink", "FROM base:1\nCOPY up-link /x\n")).toContain('"/up-link": not found');
    await expectClean();
  });

  it("COPY of a missing source or a glob matching nothing", async () => {
    const err = await fail("missing", "FROM base:1\nCOPY nothere.txt /x\n");
    expect(err).toContain('ERROR: failed to solve: failed to compute cache key: "/nothere.txt": not found');
    expect(err).toContain("   2 | >>> COPY nothere.txt /x");
    expect(await fail("glob", "FROM base:1\nCOPY *.nomatch /x/\n")).toContain('"/*.nomatch": not found');
    expect(await fail("frommissing", "FROM base:1 AS s\nFROM base:1\nCOPY --from=s /nothere /x\n")).toContain(
      '"/nothere": not found',
    );
    await expectClean();
  });

  it("a cycle in --from, and a stage copying from itself", async () => {
    const err = await fail(
      "cycle",
      "FROM base:1 AS a\nCOPY --from=b /x /x\nFROM base:1 AS b\nCOPY --from=a /y /y\n",
    );
    expect(err).toMatch(/circular dependency detected on stage: a|cannot copy from stage "b"/);
    const self = await fail("self", "FROM base:1 AS a\nCOPY --from=a /y /y\n");
    expect(self).toMatch(/circular dependency detected on stage: a|cannot copy from stage "a"/);
    // A FROM can only name an earlier stage: the first `zz` is an image, not in the store and
    // not to be had from Docker Hub (no network here), as BuildKit reports it.
    const fromLoop = await fail("fromloop", "FROM zz AS a\nFROM a AS zz\n");
    expect(fromLoop).toContain("failed to resolve source metadata for docker.io/library/zz:latest: ");
    await expectClean();
  });

  it("an unknown stage or image in --from and FROM, an unknown --target", async () => {
    const unknownFrom = await fail("unknownfrom", "FROM base:1\nCOPY --from=nosuchstage /x /x\n");
    expect(unknownFrom).toContain(
      "failed to resolve source metadata for docker.io/library/nosuchstage:latest: ",
    );
    // The step's own line says so (it does not stay open).
    expect(unknownFrom).toMatch(
      /^#\d+ ERROR: failed to resolve source metadata for docker\.io\/library\/nosuchstage:latest: /m,
    );
    expect(await fail("unknownbase", "FROM nosuchimage:2\nRUN true\n")).toContain(
      "failed to resolve source metadata for docker.io/library/nosuchimage:2: ",
    );
    expect(await fail("target", "FROM base:1 AS one\nRUN true\n", ["--target", "two"])).toContain(
      'target stage "two" could not be found',
    );
    await expectClean();
  });

  it("Dockerfile syntax errors name the line", async () => {
    expect(await fail("unknowninstr", "FROM base:1\nRUNX echo hi\n")).toContain(
      "Dockerfile:2: unknown instruction: RUNX",
    );
    expect(await fail("copyargs", "FROM base:1\nCOPY onlyone\n")).toMatch(
      /COPY requires at least two arguments/,
    );
    expect(await fail("nofrom", "RUN echo no base\n")).toMatch(/no build stage|FROM/);
    expect(await fail("duration", "FROM base:1\nHEALTHCHECK --interval=nope CMD true\n")).toContain(
      'Dockerfile parse error on line 2: time: invalid duration "nope"',
    );
    expect(await fail("heredoc", "FROM base:1\nRUN <<EOF\necho unterminated\n")).toMatch(/heredoc|EOF/);
    await expectClean();
  });

  it("bad flags: --platform of another architecture, --secret without a file", async () => {
    expect(await fail("platform", "FROM base:1\n", ["--platform", "linux/s390x"])).toMatch(
      /building for linux\/s390x is not supported/,
    );
    writeFileSync(path.join(t.dir, "secret.Dockerfile"), "FROM base:1\nRUN --mount=type=secret,id=s true\n");
    const r = await strata(root, [
      "build",
      "-f",
      path.join(t.dir, "secret.Dockerfile"),
      "--secret",
      "id=s,src=/no/such/file",
      ctx,
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("failed to read secret s");
    await expectClean();
  });

  it("an interrupted build (SIGINT during RUN) stops the container, unmounts and tags nothing", async () => {
    const df = path.join(t.dir, "sleep.Dockerfile");
    const marker = `${process.pid}${Date.now()}`;
    writeFileSync(df, `FROM base:1\nRUN echo started && sleep 30 && echo ${marker}\n`);
    const child = spawn(
      process.execPath,
      [STRATA_BIN, "--root", root, "build", "--progress", "plain", "-t", "bad-sigint:1", "-f", df, ctx],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let err = "";
    const started = new Promise<void>((resolve) =>
      child.stderr.on("data", (c: Buffer) => {
        err += c.toString();
        // The process's own output line (`#5 0.052 started`), not the step's name.
        if (/^#\d+ \d+\.\d+ started$/m.test(err)) resolve();
      }),
    );
    const exited = new Promise<number>((resolve) =>
      child.on("close", (code, sig) => resolve(code ?? (sig ? 128 : -1))),
    );
    await started;
    const t0 = Date.now();
    child.kill("SIGINT");
    const code = await exited;
    expect(Date.now() - t0).toBeLessThan(15_000);
    expect(code, err).toBe(1);
    expect(err).toContain("ERROR: failed to solve: Canceled: context canceled");
    // The container's process is gone (no `sleep 30` of ours is left).
    const procs = readdirSync("/proc").filter((p) => /^\d+$/.test(p));
    const leftover = procs.filter((p) => {
      try {
        return readFileSync(`/proc/${p}/cmdline`, "utf8").includes(marker);
      } catch {
        return false;
      }
    });
    expect(leftover).toEqual([]);
    await expectClean();
  });

  it("a build context that is not a directory, a missing Dockerfile", async () => {
    const r = await strata(root, ["build", path.join(t.dir, "nope")]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("unable to prepare context");
    mkdirSync(path.join(t.dir, "empty"), { recursive: true });
    const r2 = await strata(root, ["build", path.join(t.dir, "empty")]);
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/failed to read dockerfile: open .*Dockerfile: no such file or directory/);
    expect(existsSync(path.join(t.dir, "empty", "Dockerfile"))).toBe(false);
    await expectClean();
  });
});
