import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata, tempDir } from "../helpers/cli.js";
import { type Dockerd, startDockerd } from "../helpers/dockerd.js";
import { busyboxRootfs } from "../helpers/fixtures.js";
import { requires } from "../helpers/tools.js";

const pexec = promisify(execFile);
const need = requires({ tools: ["dockerd", "skopeo", "umoci"], root: true });

describe.runIf(need.ok)("interop with dockerd, skopeo and umoci", () => {
  const t = tempDir();
  const root = path.join(t.dir, "store");
  let d: Dockerd;
  let id: string;

  beforeAll(async () => {
    d = await startDockerd();
    const r = await strata(root, [
      "import",
      "-c",
      'CMD ["echo", "hello from strata"]',
      "-c",
      "ENV GREETING=hi",
      "-c",
      "WORKDIR /tmp",
      "-c",
      "LABEL org.example=yes",
      "-c",
      "EXPOSE 8000",
      busyboxRootfs(),
      "interop/app:1",
    ]);
    expect(r.code, r.stderr).toBe(0);
    id = r.stdout.trim();
  }, 120_000);
  afterAll(async () => {
    await d?.stop();
    t.cleanup();
  });

  it("docker load reads strata save; same ID and Config; docker run prints the CMD's output", async () => {
    const archive = path.join(t.dir, "app.tar");
    expect((await strata(root, ["save", "-o", archive, "interop/app:1"])).code).toBe(0);
    const loaded = await d.docker(["load", "-i", archive]);
    expect(loaded.stdout).toContain("Loaded image: interop/app:1");
    const dockerInspect = JSON.parse((await d.docker(["inspect", "interop/app:1"])).stdout)[0];
    const ours = JSON.parse((await strata(root, ["inspect", "interop/app:1"])).stdout)[0];
    expect(dockerInspect.Id).toBe(id);
    expect(ours.Config).toEqual(dockerInspect.Config);
    expect(ours.RootFS).toEqual(dockerInspect.RootFS);
    const run = await d.docker(["run", "--rm", "--network", "none", "interop/app:1"]);
    expect(run.stdout).toBe("hello from strata\n");
  });

  it("strata load reads docker save (shared layers, legacy layout) with the same image IDs", async () => {
    await d.docker(["import", "-c", 'CMD ["sh"]', busyboxRootfs(), "fromdocker:1"]);
    const dockerId = (await d.docker(["inspect", "--format", "{{.Id}}", "fromdocker:1"])).stdout.trim();
    const archive = path.join(t.dir, "docker.tar");
    await d.docker(["save", "-o", archive, "fromdocker:1", "interop/app:1"]);
    const other = path.join(t.dir, "store2");
    const r = await strata(other, ["load", "-i", archive]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout.split("\n").sort().join("\n")).toBe(
      "\nLoaded image: fromdocker:1\nLoaded image: interop/app:1",
    );
    const ids = (await strata(other, ["images", "--no-trunc", "--format", "{{.Repository}} {{.ID}}"])).stdout;
    expect(ids).toContain(`fromdocker ${dockerId}`);
    expect(ids).toContain(`interop/app ${id}`);
    const dockerCfg = JSON.parse((await d.docker(["inspect", "fromdocker:1"])).stdout)[0].Config;
    const ourCfg = JSON.parse((await strata(other, ["inspect", "fromdocker:1"])).stdout)[0].Config;
    expect(ourCfg.Cmd).toEqual(dockerCfg.Cmd);
    expect(ourCfg.Env).toEqual(dockerCfg.Env);
  });

  it("skopeo reads the store as an OCI layout and the saved archive as docker-archive", async () => {
    const { stdout } = await pexec("skopeo", ["inspect", `oci:${root}:docker.io/interop/app:1`]);
    const info = JSON.parse(stdout);
    expect(info.Env).toEqual(["GREETING=hi"]);
    expect(info.Labels).toEqual({ "org.example": "yes" });
    const archive = path.join(t.dir, "app2.tar");
    expect((await strata(root, ["save", "-o", archive, "interop/app:1"])).code).toBe(0);
    const { stdout: cfg } = await pexec("skopeo", ["inspect", "--config", `docker-archive:${archive}`]);
    expect(JSON.parse(cfg).config.Cmd).toEqual(["echo", "hello from strata"]);
    const copy = path.join(t.dir, "copied");
    await pexec("skopeo", ["copy", `oci:${root}:docker.io/interop/app:1`, `oci:${copy}:x`]);
    expect(JSON.parse(readFileSync(path.join(copy, "index.json"), "utf8")).manifests).toHaveLength(1);
  });

  it("umoci lists the store's tags", async () => {
    const { stdout } = await pexec("umoci", ["ls", "--layout", root]);
    expect(stdout.split("\n")).toContain("docker.io/interop/app:1");
  });
});
