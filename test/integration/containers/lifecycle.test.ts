import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata, strataBytes, tempDir } from "../../helpers/cli.js";
import { requires } from "../../helpers/tools.js";
import { mountsUnder, netnsOf, ok, storeWithBase, waitFor } from "./helpers.js";

const need = requires({ root: true, tools: ["runc", "slirp4netns", "ip"] });

describe.skipIf(!need.ok)("container lifecycle: layers, commit, export, diff, policies, faults", () => {
  const t = tempDir();
  const root = path.join(t.dir, "store");
  const ids: string[] = [];
  let baseId: string;
  const run = async (args: string[]) => {
    const r = await strata(root, ["run", ...args]);
    return r;
  };
  const idOf = async (name: string) =>
    ok(await strata(root, ["inspect", "--format", "{{.Id}}", name]), "inspect").trim();

  beforeAll(async () => {
    baseId = await storeWithBase(root);
  }, 120_000);

  afterAll(async () => {
    for (const id of ids) await strata(root, ["rm", "-f", id]);
    expect(mountsUnder(root)).toEqual([]);
    expect(netnsOf(ids)).toEqual([]);
    t.cleanup();
  });

  it("a file written in a container is in neither a second container nor the image; commit keeps it", async () => {
    const w = await run([
      "--name",
      "writer",
      "--network",
      "none",
      "bb:1",
      "sh",
      "-c",
      "echo data > /hello.txt",
    ]);
    expect(w.code).toBe(0);
    ids.push(await idOf("writer"));
    const other = await run(["--rm", "--network", "none", "bb:1", "cat", "/hello.txt"]);
    expect(other.code).toBe(1);
    expect(other.stderr).toContain("can't open '/hello.txt'");
    const again = await run(["--rm", "--network", "none", "bb:1", "ls", "/"]);
    expect(again.stdout.split("\n")).not.toContain("hello.txt");
    // The writable layer survives a stop: start the same container again and read it back.
    const cat = ok(
      await strata(root, [
        "commit",
        "-m",
        "add hello",
        "-c",
        'CMD ["cat", "/hello.txt"]',
        "writer",
        "withhello:1",
      ]),
      "commit",
    );
    expect(cat.trim()).toMatch(/^sha256:[a-f0-9]{64}$/);
    const fromCommit = await run(["--rm", "--network", "none", "withhello:1"]);
    expect(fromCommit.stdout).toBe("data\n");
    expect(fromCommit.code).toBe(0);
    const hist = ok(await strata(root, ["history", "--format", "{{.Comment}}", "withhello:1"]), "history");
    expect(hist.split("\n")[0]).toBe("add hello");
    const img = JSON.parse(ok(await strata(root, ["inspect", "withhello:1"]), "inspect"))[0];
    expect(img.RootFS.Layers).toHaveLength(2);
  });

  it("start again keeps the writable layer; diff lists A/C/D changes", async () => {
    const r = await run([
      "--name",
      "changer",
      "--network",
      "none",
      "bb:1",
      "sh",
      "-c",
      "mkdir -p /data && echo x > /data/new.txt && echo more >> /etc/passwd && rm -f /etc/group && touch /tmp/t",
    ]);
    expect(r.code).toBe(0);
    ids.push(await idOf("changer"));
    const diff = ok(await strata(root, ["diff", "changer"]), "diff");
    expect(diff).toBe(
      [
        "A /data",
        "A /data/new.txt",
        "C /etc",
        "D /etc/group",
        "C /etc/passwd",
        "C /tmp",
        "A /tmp/t",
        "",
      ].join("\n"),
    );
    const again = ok(await strata(root, ["start", "-a", "changer"]), "start -a");
    expect(again).toBe("");
    const check = await run(["--rm", "--network", "none", "bb:1", "cat", "/data/new.txt"]);
    expect(check.code).toBe(1);
    const cp = path.join(t.dir, "copied.txt");
    ok(await strata(root, ["cp", "changer:/data/new.txt", cp]), "cp out");
    expect(readFileSync(cp, "utf8")).toBe("x\n");
    writeFileSync(path.join(t.dir, "in.txt"), "from host\n");
    ok(await strata(root, ["cp", path.join(t.dir, "in.txt"), "changer:/data/"]), "cp in");
    expect(ok(await strata(root, ["diff", "changer"]), "diff")).toContain("A /data/in.txt\n");
  });

  it("export | import gives a one-layer image with the container's files and no history", async () => {
    ok(await strata(root, ["create", "--name", "exp", "--network", "none", "bb:1", "true"]), "create");
    ids.push(await idOf("exp"));
    const tarFile = path.join(t.dir, "exp.tar");
    ok(await strata(root, ["export", "-o", tarFile, "exp"]), "export -o");
    const list = execFileSync("tar", ["-tf", tarFile], { encoding: "utf8" }).split("\n");
    expect(list).toContain("bin/busybox");
    expect(list).toContain("etc/passwd");
    const stream = await strataBytes(root, ["export", "exp"]);
    expect(stream.code).toBe(0);
    const imp = ok(await strata(root, ["import", "-", "flat:1"], { input: stream.stdout }), "import");
    const img = JSON.parse(ok(await strata(root, ["inspect", "flat:1"]), "inspect"))[0];
    expect(img.Id).toBe(imp.trim());
    expect(img.RootFS.Layers).toHaveLength(1);
    expect(img.Config.Cmd).toBeNull();
    const hist = ok(await strata(root, ["history", "-q", "flat:1"]), "history");
    expect(hist.trim().split("\n")).toHaveLength(1);
    const out = await run(["--rm", "--network", "none", "flat:1", "cat", "/etc/hostname"]);
    expect(out.code).toBe(0);
  });

  it("rmi and image prune with containers present follow Docker's rules", async () => {
    ok(await strata(root, ["tag", "bb:1", "used:1"]), "tag");
    const id = ok(
      await strata(root, ["create", "--name", "user", "--network", "none", "used:1", "true"]),
      "create",
    ).trim();
    ids.push(id);
    // image ID: stopped container -> must be forced.
    const byId = await strata(root, ["rmi", baseId.slice(7, 19)]);
    expect(byId.code).toBe(1);
    expect(byId.stderr).toContain("image is referenced in multiple repositories");
    // image prune -a keeps images that containers use.
    const prune = ok(await strata(root, ["image", "prune", "-a", "-f"]), "prune -a");
    expect(prune).not.toContain(baseId);
    expect(ok(await strata(root, ["images", "-q", "--no-trunc"]), "images")).toContain(baseId);
    // A private image used by a stopped container only.
    ok(await strata(root, ["commit", "user", "solo:1"]), "commit");
    const soloId = ok(await strata(root, ["inspect", "--format", "{{.Id}}", "solo:1"]), "inspect").trim();
    const soloCtr = ok(
      await strata(root, ["create", "--network", "none", "solo:1", "true"]),
      "create",
    ).trim();
    ids.push(soloCtr);
    const stopped = await strata(root, ["rmi", soloId.slice(7, 19)]);
    expect(stopped.code).toBe(1);
    expect(stopped.stderr).toBe(
      `Error: conflict: unable to delete ${soloId.slice(7, 19)} (must be forced) - image is being used by stopped container ${soloCtr.slice(0, 12)}\n`,
    );
    const byName = await strata(root, ["rmi", "solo:1"]);
    expect(byName.code).toBe(1);
    expect(byName.stderr).toContain(
      `conflict: unable to remove repository reference "solo:1" (must force) - container ${soloCtr.slice(0, 12)} is using its referenced image ${soloId.slice(7, 19)}`,
    );
    // Running container: cannot be forced by ID; -f by name only untags.
    const running = ok(
      await strata(root, ["run", "-d", "--network", "none", "solo:1", "sleep", "60"]),
      "run -d",
    ).trim();
    ids.push(running);
    const hard = await strata(root, ["rmi", "-f", soloId.slice(7, 19)]);
    expect(hard.code).toBe(1);
    expect(hard.stderr).toContain(
      `conflict: unable to delete ${soloId.slice(7, 19)} (cannot be forced) - image is being used by running container ${running.slice(0, 12)}`,
    );
    const untag = ok(await strata(root, ["rmi", "-f", "solo:1"]), "rmi -f by name");
    expect(untag).toBe("Untagged: solo:1\n");
    expect(ok(await strata(root, ["images", "-q", "--no-trunc"]), "images")).toContain(soloId);
    // Dangling, but in use: image prune keeps it.
    ok(await strata(root, ["image", "prune", "-f"]), "prune");
    expect(ok(await strata(root, ["images", "-q", "--no-trunc"]), "images")).toContain(soloId);
    // Once only stopped containers use it, rmi -f deletes it; the containers still work.
    ok(await strata(root, ["rm", "-f", running]), "rm -f");
    const del = ok(await strata(root, ["rmi", "-f", soloId.slice(7, 19)]), "rmi -f stopped");
    expect(del).toContain(`Deleted: ${soloId}`);
    const restart = await strata(root, ["start", "-a", soloCtr]);
    expect(restart.code).toBe(0);
    const ps = ok(
      await strata(root, ["ps", "-a", "--filter", `id=${soloCtr}`, "--format", "{{.Image}}"]),
      "ps",
    );
    expect(ps).toBe(`${soloId.slice(7, 19)}\n`);
  });

  it("a process ignoring SIGTERM is killed after the stop timeout (137)", async () => {
    const id = ok(
      await run([
        "-d",
        "--network",
        "none",
        "--stop-timeout",
        "1",
        "bb:1",
        "sh",
        "-c",
        "trap '' TERM; while true; do sleep 0.2; done",
      ]),
      "run -d",
    ).trim();
    ids.push(id);
    const t0 = Date.now();
    ok(await strata(root, ["stop", id]), "stop");
    const took = Date.now() - t0;
    expect(took).toBeGreaterThanOrEqual(1000);
    expect(took).toBeLessThan(8000);
    expect(ok(await strata(root, ["wait", id]), "wait")).toBe("137\n");
    const st = JSON.parse(ok(await strata(root, ["inspect", id]), "inspect"))[0].State;
    expect(st).toMatchObject({ Status: "exited", Running: false, ExitCode: 137 });
  });

  it("a missing command fails with Docker's message and exit 127", async () => {
    const r = await run(["--rm", "--network", "none", "bb:1", "no-such-command"]);
    expect(r.code).toBe(127);
    expect(r.stderr).toContain(
      'unable to start container process: exec: "no-such-command": executable file not found in $PATH',
    );
    expect(r.stdout).toBe("");
  });

  it("the supervisor killed with -9: ps -a shows the container exited and rm removes it", async () => {
    const id = ok(await run(["-d", "--name", "orphan", "bb:1", "sleep", "300"]), "run -d").trim();
    ids.push(id);
    const dir = path.join(root, "containers", id);
    const state = JSON.parse(readFileSync(path.join(dir, "state.json"), "utf8"));
    process.kill(state.supervisorPid, "SIGKILL");
    const ps = await waitFor(async () => {
      const r = ok(
        await strata(root, ["ps", "-a", "--filter", "name=orphan", "--format", "{{.Status}}"]),
        "ps",
      );
      return /^Exited \(137\)/.test(r) ? r : undefined;
    });
    expect(ps).toMatch(/^Exited \(137\) .* ago\n$/);
    // The container's process is gone with it.
    expect(() => process.kill(state.pid, 0)).toThrow();
    expect(ok(await strata(root, ["rm", "orphan"]), "rm")).toBe("orphan\n");
    expect(mountsUnder(path.join(root, "snapshots"))).toEqual([]);
    expect(netnsOf([id])).toEqual([]);
  });

  it("container prune, system df and system prune", async () => {
    const df = ok(await strata(root, ["system", "df"]), "df");
    const lines = df.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE$/);
    expect(lines[1]).toMatch(/^Images\s+\d+\s+\d+\s+\S+\s+\S+ \(\d+%\)$/);
    expect(lines[2]).toMatch(/^Containers\s+\d+\s+0\s+/);
    expect(lines[3]).toMatch(/^Local Volumes\s+0\s+0\s+0B\s+0B$/);
    expect(lines[4]).toMatch(/^Build Cache\s+\d+\s+0\s+/);
    const before = ok(await strata(root, ["ps", "-a", "-q", "--no-trunc"]), "ps")
      .trim()
      .split("\n")
      .filter(Boolean);
    expect(before.length).toBeGreaterThan(0);
    const pr = ok(await strata(root, ["container", "prune", "-f"]), "container prune");
    expect(pr).toMatch(/^Deleted Containers:\n/);
    for (const id of before) expect(pr).toContain(id);
    expect(pr).toMatch(/Total reclaimed space: \S+\n$/);
    expect(ok(await strata(root, ["ps", "-a", "-q"]), "ps")).toBe("");
    const sp = ok(await strata(root, ["system", "prune", "-a", "-f"]), "system prune");
    expect(sp).toContain("Deleted Images:");
    expect(ok(await strata(root, ["images", "-q"]), "images")).toBe("");
    expect(mountsUnder(root)).toEqual([]);
  });
});
