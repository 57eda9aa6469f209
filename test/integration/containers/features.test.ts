import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata, tempDir } from "../../helpers/cli.js";
import { requires } from "../../helpers/tools.js";
import { buildImage, mountsUnder, netnsOf, ok, storeWithBase, waitFor } from "./helpers.js";

const need = requires({ root: true, tools: ["runc", "slirp4netns", "ip", "script", "tini-static"] });

/**
 * `tty`'s answer through a terminal: CR LF, or CR CR LF when the line comes before runc has
 * cleared ONLCR on the container's terminal (see ttyWrapped in runtime/supervisor.ts).
 */
const TTY_LINE = /^\/dev\/pts\/\d+\r\r?\n$/;

/** The processes of the host whose command line contains `needle` (for leak checks). */
function hostProcesses(needle: string): string[] {
  const out: string[] = [];
  for (const p of readdirSync("/proc").filter((n) => /^\d+$/.test(n))) {
    try {
      const cmd = readFileSync(`/proc/${p}/cmdline`, "utf8").replace(/\0/g, " ");
      if (cmd.includes(needle)) out.push(`${p} ${cmd}`);
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

describe.skipIf(!need.ok)("containers: exec, top, rename, volumes, limits, logs, restart, --init, -t", () => {
  const t = tempDir();
  const root = path.join(t.dir, "store");
  const ids: string[] = [];
  const s = (args: string[], input?: string) => strata(root, args, input === undefined ? {} : { input });
  const idOf = async (name: string) =>
    ok(await s(["inspect", "--format", "{{.Id}}", name]), "inspect").trim();
  const inspect = async (name: string) => JSON.parse(ok(await s(["inspect", name]), "inspect"))[0];
  const runD = async (args: string[]) => {
    const id = ok(await s(["run", "-d", ...args]), `run -d ${args.join(" ")}`).trim();
    ids.push(id);
    return id;
  };

  beforeAll(async () => {
    await storeWithBase(root);
  }, 120_000);

  afterAll(async () => {
    for (const id of ids) await s(["rm", "-f", id]);
    expect(mountsUnder(root)).toEqual([]);
    expect(netnsOf(ids)).toEqual([]);
    // No supervisor, runc or container process of this store is left.
    expect(hostProcesses(root)).toEqual([]);
    t.cleanup();
  });

  it("exec: -e, -w, -u, -i, -t, exit codes and Docker's errors", async () => {
    await runD(["--name", "ex", "--network", "none", "-e", "FOO=bar", "-w", "/tmp", "bb:1", "sleep", "300"]);
    expect(ok(await s(["exec", "ex", "sh", "-c", "echo $FOO; pwd; id -u"]), "exec")).toBe("bar\n/tmp\n0\n");
    const opts = await s(
      ["exec", "-e", "FOO=baz", "-e", "NEW=1", "-w", "/etc", "-u", "nobody", "ex", "sh", "-c"].concat([
        "echo $FOO $NEW; pwd; id -un",
      ]),
    );
    expect(opts).toMatchObject({ code: 0, stdout: "baz 1\n/etc\nnobody\n" });
    expect(
      ok(await s(["exec", "-u", "1234:5678", "ex", "sh", "-c", "id -u; id -g"]), "exec -u uid:gid"),
    ).toBe("1234\n5678\n");
    // -i: stdin reaches the process; without -i it does not.
    expect(await s(["exec", "-i", "ex", "cat"], "hello stdin\n")).toMatchObject({
      code: 0,
      stdout: "hello stdin\n",
    });
    expect(await s(["exec", "ex", "cat"], "ignored\n")).toMatchObject({ code: 0, stdout: "" });
    // -t: a terminal in the container (output with the terminal's CR LF).
    expect(await s(["exec", "-t", "ex", "sh", "-c", "tty; exit 3"])).toMatchObject({
      code: 3,
      stdout: expect.stringMatching(TTY_LINE),
    });
    // -it needs a terminal on the caller's side, as Docker's CLI.
    expect(await s(["exec", "-it", "ex", "sh"])).toMatchObject({
      code: 1,
      stderr: "the input device is not a TTY\n",
    });
    expect(await s(["exec", "ex", "sh", "-c", "exit 7"])).toMatchObject({ code: 7 });
    const missing = await s(["exec", "ex", "no-such-cmd"]);
    expect(missing.code).toBe(127);
    expect(missing.stderr).toBe(
      'OCI runtime exec failed: exec failed: unable to start container process: exec: "no-such-cmd": executable file not found in $PATH: unknown\n',
    );
    // -d: runs in the background; its effect shows up.
    ok(await s(["exec", "-d", "ex", "sh", "-c", "sleep 0.2; echo done > /tmp/bg"]), "exec -d");
    await waitFor(async () =>
      (await s(["exec", "ex", "cat", "/tmp/bg"])).stdout === "done\n" ? true : undefined,
    );
    ok(await s(["create", "--name", "ex-stopped", "--network", "none", "bb:1", "true"]), "create");
    ids.push(await idOf("ex-stopped"));
    const stopped = await s(["exec", "ex-stopped", "true"]);
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toMatch(
      /^Error: Error response from daemon: Container [a-f0-9]{64} is not running\n$/,
    );
  });

  it("top lists the container's processes (ps -ef, or the given ps options)", async () => {
    await runD(["--name", "topper", "--network", "none", "bb:1", "sh", "-c", "sleep 301 & sleep 302"]);
    const out = ok(await s(["top", "topper"]), "top")
      .split("\n")
      .filter(Boolean);
    expect(out[0]).toMatch(/^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD$/);
    expect(out.slice(1).some((l) => l.endsWith("sleep 301"))).toBe(true);
    expect(out.slice(1).some((l) => l.endsWith("sleep 302"))).toBe(true);
    // sh execs its last command: the container runs sleep 302 (its PID 1) and sleep 301.
    expect(out).toHaveLength(3);
    const custom = ok(await s(["top", "topper", "-o", "pid,comm"]), "top -o")
      .split("\n")
      .filter(Boolean);
    expect(custom[0]).toMatch(/^PID\s+COMMAND$/);
    expect(custom.slice(1).map((l) => l.trim().split(/\s+/)[1])).toEqual(["sleep", "sleep"]);
    ok(await s(["stop", "-t", "0", "topper"]), "stop");
    const stopped = await s(["top", "topper"]);
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toContain("is not running");
  });

  it("rename: ps shows the new name; Docker's conflicts", async () => {
    const id = await runD(["--name", "old-name", "--network", "none", "bb:1", "sleep", "300"]);
    expect(await s(["rename", "old-name", "new-name"])).toMatchObject({ code: 0, stdout: "", stderr: "" });
    expect(ok(await s(["ps", "--filter", `id=${id}`, "--format", "{{.Names}}"]), "ps")).toBe("new-name\n");
    expect((await s(["inspect", "old-name"])).code).toBe(1);
    expect((await inspect("new-name")).Name).toBe("/new-name");
    await runD(["--name", "taken", "--network", "none", "bb:1", "sleep", "300"]);
    const conflict = await s(["rename", "new-name", "taken"]);
    expect(conflict.code).toBe(1);
    expect(conflict.stderr).toMatch(
      /^Error: Error response from daemon: Conflict\. The container name "\/taken" is already in use by container "[a-f0-9]{64}"\. You have to remove \(or rename\) that container to be able to reuse that name\.\n$/,
    );
    expect((await s(["rename", "new-name", "new-name"])).stderr).toBe(
      "Error: Error response from daemon: Renaming a container with the same name as its current name\n",
    );
    expect(await s(["rename", "no-such-ctr", "whatever"])).toMatchObject({
      code: 1,
      stderr: "Error: Error response from daemon: No such container: no-such-ctr\n",
    });
  });

  it("volumes: bind mounts (rw, ro), named volumes, anonymous ones for VOLUME, rm -v, volume ls/rm/prune", async () => {
    const host = path.join(t.dir, "bind");
    mkdirSync(host);
    writeFileSync(path.join(host, "in.txt"), "from host\n");
    const bind = await s([
      "run",
      "--rm",
      "--network",
      "none",
      "-v",
      `${host}:/mnt`,
      "bb:1",
      "sh",
      "-c",
      "cat /mnt/in.txt; echo from container > /mnt/out.txt",
    ]);
    expect(bind).toMatchObject({ code: 0, stdout: "from host\n" });
    expect(readFileSync(path.join(host, "out.txt"), "utf8")).toBe("from container\n");
    const ro = await s([
      "run",
      "--rm",
      "--network",
      "none",
      "-v",
      `${host}:/mnt:ro`,
      "bb:1",
      "touch",
      "/mnt/x",
    ]);
    expect(ro.code).toBe(1);
    expect(ro.stderr).toContain("Read-only file system");
    // A named volume outlives its containers (--rm too) and is shared by the next.
    ok(
      await s([
        "run",
        "--rm",
        "--network",
        "none",
        "-v",
        "keep:/data",
        "bb:1",
        "sh",
        "-c",
        "echo kept > /data/f",
      ]),
      "run -v named",
    );
    expect(
      ok(
        await s(["run", "--rm", "--network", "none", "-v", "keep:/data", "bb:1", "cat", "/data/f"]),
        "read back",
      ),
    ).toBe("kept\n");
    // An image's VOLUME gets an anonymous volume seeded with the image's content.
    await buildImage(
      root,
      "withvol:1",
      "FROM bb:1\nRUN mkdir /seed && echo seeded > /seed/file\nVOLUME /seed\n",
    );
    const vid = await runD([
      "--name",
      "vol-user",
      "--network",
      "none",
      "-v",
      "keep:/data",
      "withvol:1",
      "sleep",
      "300",
    ]);
    const mounts = (await inspect(vid)).Mounts as {
      Type: string;
      Name: string;
      Destination: string;
      Source: string;
    }[];
    const anon = mounts.find((m) => m.Destination === "/seed")!;
    expect(anon).toMatchObject({ Type: "volume", Destination: "/seed" });
    expect(anon.Name).toMatch(/^[a-f0-9]{64}$/);
    expect(mounts.find((m) => m.Destination === "/data")).toMatchObject({ Type: "volume", Name: "keep" });
    expect(ok(await s(["exec", "vol-user", "cat", "/seed/file"]), "exec")).toBe("seeded\n");
    const ls = ok(await s(["volume", "ls"]), "volume ls").split("\n");
    expect(ls[0]).toMatch(/^DRIVER\s+VOLUME NAME$/);
    expect(ls).toContain(`local     ${anon.Name}`);
    expect(ls).toContain("local     keep");
    const inUse = await s(["volume", "rm", "keep"]);
    expect(inUse.code).toBe(1);
    expect(inUse.stderr).toBe(
      `Error: Error response from daemon: remove keep: volume is in use - [${vid}]\n`,
    );
    // rm -v: the anonymous volume goes with the container, the named one stays.
    ok(await s(["rm", "-f", "-v", "vol-user"]), "rm -f -v");
    expect(ok(await s(["volume", "ls", "-q"]), "volume ls -q").split("\n")).not.toContain(anon.Name);
    expect(existsSync(anon.Source)).toBe(false);
    expect(ok(await s(["volume", "ls", "-q"]), "volume ls -q")).toContain("keep\n");
    // Without -v the anonymous volume stays, unused; volume prune removes it, not the named one.
    const keepAnon = ok(await s(["create", "--network", "none", "withvol:1", "true"]), "create").trim();
    const anon2 = ((await inspect(keepAnon)).Mounts as { Name: string }[])[0]!.Name;
    ok(await s(["rm", keepAnon]), "rm");
    expect(ok(await s(["volume", "ls", "-q"]), "ls")).toContain(`${anon2}\n`);
    const prune = ok(await s(["volume", "prune", "-f"]), "volume prune");
    expect(prune).toMatch(new RegExp(`^Deleted Volumes:\\n${anon2}\\n\\nTotal reclaimed space: \\S+\\n$`));
    expect(ok(await s(["volume", "ls", "-q"]), "ls")).toBe("keep\n");
    // run --rm removes the container's anonymous volumes too.
    ok(await s(["run", "--rm", "--network", "none", "withvol:1", "true"]), "run --rm");
    expect(ok(await s(["volume", "ls", "-q"]), "ls")).toBe("keep\n");
    expect(ok(await s(["volume", "rm", "keep"]), "volume rm")).toBe("keep\n");
    expect(await s(["volume", "rm", "keep"])).toMatchObject({
      code: 1,
      stderr: "Error: Error response from daemon: get keep: no such volume\n",
    });
  }, 60_000);

  it("-m and --cpus set the container's cgroup limits; Docker's errors for impossible ones", async () => {
    const id = await runD([
      "--name",
      "limited",
      "--network",
      "none",
      "-m",
      "32m",
      "--cpus",
      "0.5",
      "bb:1",
      "sleep",
      "300",
    ]);
    const hc = (await inspect(id)).HostConfig;
    expect(hc).toMatchObject({ Memory: 32 * 1024 * 1024, NanoCpus: 500_000_000 });
    const v2 = existsSync("/sys/fs/cgroup/cgroup.controllers");
    if (v2) {
      expect(readFileSync(`/sys/fs/cgroup/strata/${id}/memory.max`, "utf8").trim()).toBe(
        String(32 * 1024 * 1024),
      );
      expect(readFileSync(`/sys/fs/cgroup/strata/${id}/cpu.max`, "utf8").trim()).toBe("50000 100000");
    } else {
      expect(readFileSync(`/sys/fs/cgroup/memory/strata/${id}/memory.limit_in_bytes`, "utf8").trim()).toBe(
        String(32 * 1024 * 1024),
      );
      expect(readFileSync(`/sys/fs/cgroup/cpu/strata/${id}/cpu.cfs_quota_us`, "utf8").trim()).toBe("50000");
    }
    // A process that needs more memory than the limit is killed (137).
    const hog = await s([
      "run",
      "--rm",
      "--network",
      "none",
      "-m",
      "16m",
      "bb:1",
      "sh",
      "-c",
      "x=$(head -c 64000000 /dev/zero | tr '\\0' a); echo survived",
    ]);
    expect(hog.code).toBe(137);
    expect(hog.stdout).toBe("");
    const tiny = await s(["run", "--rm", "-m", "4m", "bb:1", "true"]);
    expect(tiny).toMatchObject({ code: 125 });
    expect(tiny.stderr).toContain("Error response from daemon: Minimum memory limit allowed is 6MB.");
    const n = (await import("node:os")).cpus().length;
    const many = await s(["run", "--rm", "--cpus", "999", "bb:1", "true"]);
    expect(many.code).toBe(125);
    expect(many.stderr).toContain(
      `Range of CPUs is from 0.01 to ${n}.00, as there are only ${n} CPUs available.`,
    );
    const bad = await s(["run", "--rm", "--cpus", "lots", "bb:1", "true"]);
    expect(bad.code).toBe(125);
    expect(bad.stderr).toContain(
      'invalid argument "lots" for "--cpus" flag: failed to parse lots as a rational number',
    );
  }, 60_000);

  it("logs: -f follows until the container exits; --tail, --since, -t", async () => {
    const id = await runD([
      "--name",
      "talker",
      "--network",
      "none",
      "bb:1",
      "sh",
      "-c",
      "echo one; echo two >&2; sleep 1.2; echo three; sleep 0.3; echo four",
    ]);
    const t0 = Date.now();
    const follow = await s(["logs", "-f", "talker"]);
    expect(Date.now() - t0).toBeGreaterThan(1000); // it waited for the later lines
    expect(follow).toMatchObject({ code: 0, stdout: "one\nthree\nfour\n", stderr: "two\n" });
    expect((await inspect(id)).State.Status).toBe("exited");
    expect(ok(await s(["logs", "--tail", "2", "talker"]), "tail")).toBe("three\nfour\n");
    expect(ok(await s(["logs", "--tail", "0", "talker"]), "tail 0")).toBe("");
    const stamped = ok(await s(["logs", "-t", "talker"]), "logs -t")
      .split("\n")
      .filter(Boolean);
    expect(stamped).toHaveLength(3);
    for (const l of stamped) expect(l).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z (one|three|four)$/);
    // --since the third line's time: the lines before it are left out.
    const third = stamped[1]!.split(" ")[0]!;
    expect(ok(await s(["logs", "--since", third, "talker"]), "since")).toBe("three\nfour\n");
    const all = await s(["logs", "--since", "10m", "talker"]);
    expect(all).toMatchObject({ stdout: "one\nthree\nfour\n", stderr: "two\n" });
  });

  it("restart restarts a running container and starts a stopped one", async () => {
    const id = await runD([
      "--name",
      "again",
      "--network",
      "none",
      "bb:1",
      "sh",
      "-c",
      "echo started; sleep 300",
    ]);
    const before = (await inspect(id)).State;
    expect(ok(await s(["restart", "-t", "0", "again"]), "restart")).toBe("again\n");
    const after = (await inspect(id)).State;
    expect(after).toMatchObject({ Status: "running", Running: true });
    expect(after.Pid).not.toBe(before.Pid);
    expect(Date.parse(after.StartedAt)).toBeGreaterThan(Date.parse(before.StartedAt));
    ok(await s(["stop", "-t", "0", "again"]), "stop");
    ok(await s(["restart", "again"]), "restart stopped");
    expect((await inspect(id)).State.Running).toBe(true);
    await waitFor(async () =>
      ok(await s(["logs", "again"]), "logs") === "started\nstarted\nstarted\n" ? true : undefined,
    );
  });

  it("--restart on-failure:N, always (until stopped), and Docker's policy errors", async () => {
    const id = await runD([
      "--name",
      "flaky",
      "--network",
      "none",
      "--restart",
      "on-failure:2",
      "bb:1",
      "sh",
      "-c",
      "echo run; exit 3",
    ]);
    const st = await waitFor(async () => {
      const i = await inspect(id);
      return i.State.Status === "exited" ? i : undefined;
    });
    expect(st.RestartCount).toBe(2);
    expect(st.State.ExitCode).toBe(3);
    expect(st.HostConfig.RestartPolicy).toEqual({ Name: "on-failure", MaximumRetryCount: 2 });
    expect(ok(await s(["logs", "flaky"]), "logs")).toBe("run\nrun\nrun\n");
    // on-failure does not restart after exit 0.
    const fine = await runD(["--network", "none", "--restart", "on-failure", "bb:1", "true"]);
    expect(ok(await s(["wait", fine]), "wait")).toBe("0\n");
    expect((await inspect(fine)).RestartCount).toBe(0);
    // always: restarts after a clean exit too, until stopped.
    const always = await runD([
      "--name",
      "forever",
      "--network",
      "none",
      "--restart",
      "always",
      "bb:1",
      "sh",
      "-c",
      "echo tick; sleep 0.2",
    ]);
    await waitFor(async () => ((await inspect(always)).RestartCount >= 2 ? true : undefined));
    ok(await s(["stop", "forever"]), "stop");
    const stopped = (await inspect(always)).State;
    expect(stopped).toMatchObject({ Status: "exited", Running: false, Restarting: false });
    const count = (await inspect(always)).RestartCount;
    await new Promise((r) => setTimeout(r, 1000));
    expect((await inspect(always)).RestartCount).toBe(count); // stays stopped
    expect((await inspect(always)).State.Status).toBe("exited");
    const bogus = await s(["run", "--restart", "sometimes", "bb:1", "true"]);
    expect(bogus.code).toBe(125);
    expect(bogus.stderr).toContain("Error response from daemon: invalid restart policy 'sometimes'.");
    const count3 = await s(["run", "--restart", "always:3", "bb:1", "true"]);
    expect(count3.stderr).toContain("maximum retry count cannot be used with restart policy 'always'");
    expect(await s(["run", "--rm", "--restart", "always", "bb:1", "true"])).toMatchObject({
      code: 125,
      stderr: "strata: Conflicting options: --restart and --rm.\nSee 'strata run --help'.\n",
    });
  }, 60_000);

  it("--init runs tini as PID 1, which passes the stop signal on", async () => {
    const r = await s([
      "run",
      "--rm",
      "--network",
      "none",
      "--init",
      "bb:1",
      "sh",
      "-c",
      "tr '\\0' ' ' < /proc/1/cmdline",
    ]);
    expect(r).toMatchObject({
      code: 0,
      stdout: "/sbin/docker-init -- sh -c tr '\\0' ' ' < /proc/1/cmdline ",
    });
    const id = await runD(["--name", "inited", "--network", "none", "--init", "bb:1", "sleep", "300"]);
    const t0 = Date.now();
    ok(await s(["stop", "inited"]), "stop");
    expect(Date.now() - t0).toBeLessThan(5000); // not the 10 s timeout: sleep got SIGTERM
    expect((await inspect(id)).State.ExitCode).toBe(143);
    expect((await inspect(id)).HostConfig.Init).toBe(true);
  });

  it("run -t gives the container a terminal, in the foreground and detached", async () => {
    const fg = await s(["run", "--rm", "--network", "none", "-t", "bb:1", "sh", "-c", "tty; exit 4"]);
    expect(fg).toMatchObject({ code: 4, stdout: expect.stringMatching(TTY_LINE) });
    const id = await runD(["-t", "--network", "none", "bb:1", "sh", "-c", "tty; echo err >&2"]);
    expect(ok(await s(["wait", id]), "wait")).toBe("0\n");
    // A terminal has one stream: both lines are stdout in the log.
    expect(await s(["logs", id])).toMatchObject({
      stdout: expect.stringMatching(/^\/dev\/pts\/\d+\r\r?\nerr\r\n$/),
      stderr: "",
    });
    expect(await s(["run", "-it", "bb:1", "sh"])).toMatchObject({
      code: 1,
      stderr: "the input device is not a TTY\n",
    });
  });
});
