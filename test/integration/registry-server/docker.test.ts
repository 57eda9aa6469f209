/**
 * Interop with a real dockerd (Debian's docker.io 20.10) started by the test: `docker login`,
 * `docker push`, `docker pull` and `docker search` against Strata's registry, with Basic auth
 * and with token auth.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { busyboxRootfsTar, type Dockerd, startDockerd } from "../../helpers/registry-dockerd.js";
import {
  freePort,
  haveTool,
  type RegistryProcess,
  startStrata,
  tempDir,
  writeHtpasswd,
} from "../../helpers/registry-servers.js";

const hasDocker = haveTool("dockerd") && haveTool("htpasswd") && process.getuid?.() === 0;

describe.skipIf(!hasDocker)("dockerd interop", () => {
  let dockerd: Dockerd | undefined;
  let basicReg: RegistryProcess | undefined;
  let tokenReg: RegistryProcess | undefined;

  beforeAll(async () => {
    const file = path.join(tempDir("docker"), "htpasswd");
    writeHtpasswd(file, { dora: "dora-pass", eve: "eve-pass" });
    const basicPort = await freePort();
    const tokenPort = await freePort();
    basicReg = await startStrata({
      addr: `127.0.0.1:${basicPort}`,
      config: {
        auth: { htpasswd: { path: file } },
        access: [{ repositories: ["**"], users: ["dora"], actions: ["pull", "push", "delete"] }],
        search: {
          repositories: { "team/busybox": { description: "tiny shell for tests", stars: 7, official: true } },
        },
      },
    });
    tokenReg = await startStrata({
      addr: `127.0.0.1:${tokenPort}`,
      config: {
        auth: { htpasswd: { path: file }, token: { service: "docker-test" } },
        access: [
          { repositories: ["**"], users: ["dora"], actions: ["pull", "push", "delete"] },
          { repositories: ["**"], users: ["eve"], actions: ["pull"] },
        ],
      },
    });
    dockerd = await startDockerd({ insecureRegistries: [basicReg.host, tokenReg.host] });
    await dockerd.docker(["import", await busyboxRootfsTar(), "strata-test/busybox:base"]);
  });

  afterAll(async () => {
    await dockerd?.stop();
    await basicReg?.stop();
    await tokenReg?.stop();
  });

  it("Basic auth: login, push, remove, pull; the pulled digest is the pushed one", async () => {
    const d = dockerd!;
    const host = basicReg!.host;
    await expect(
      d.docker(["login", host, "-u", "dora", "--password-stdin"], { input: "wrong" }),
    ).rejects.toThrow(/unauthorized|401/i);
    const login = await d.docker(["login", host, "-u", "dora", "--password-stdin"], { input: "dora-pass" });
    expect(login.stdout).toContain("Login Succeeded");
    await d.docker(["tag", "strata-test/busybox:base", `${host}/team/busybox:1.0`]);
    const push = await d.docker(["push", `${host}/team/busybox:1.0`]);
    expect(push.stdout).toMatch(/1\.0: digest: sha256:[0-9a-f]{64} size: \d+/);
    const pushed = /digest: (sha256:[0-9a-f]{64})/.exec(push.stdout)![1];
    await d.docker(["rmi", `${host}/team/busybox:1.0`]);
    const pull = await d.docker(["pull", `${host}/team/busybox:1.0`]);
    expect(pull.stdout).toContain(`Digest: ${pushed}`);
    const inspect = await d.docker([
      "image",
      "inspect",
      "--format",
      "{{json .RepoDigests}}",
      `${host}/team/busybox:1.0`,
    ]);
    expect(inspect.stdout).toContain(`${host}/team/busybox@${pushed}`);
  });

  it("Basic auth: docker search finds the repository with its configured description", async () => {
    const r = await dockerd!.docker(["search", "--no-trunc", `${basicReg!.host}/busybox`]);
    const lines = r.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^NAME\s+DESCRIPTION\s+STARS\s+OFFICIAL\s+AUTOMATED/);
    expect(lines[1]).toMatch(/team\/busybox\s+tiny shell for tests\s+7\s+\[OK\]/);
  });

  it("Basic auth: after logout, push is refused", async () => {
    const d = dockerd!;
    const host = basicReg!.host;
    await d.docker(["logout", host]);
    await d.docker(["tag", "strata-test/busybox:base", `${host}/team/busybox:anon`]);
    await expect(d.docker(["push", `${host}/team/busybox:anon`])).rejects.toThrow(
      /no basic auth credentials|unauthorized/i,
    );
  });

  it("token auth: login, push, pull; a pull-only user cannot push", async () => {
    const d = dockerd!;
    const host = tokenReg!.host;
    const login = await d.docker(["login", host, "-u", "dora", "--password-stdin"], { input: "dora-pass" });
    expect(login.stdout).toContain("Login Succeeded");
    await d.docker(["tag", "strata-test/busybox:base", `${host}/tok/busybox:1`]);
    const push = await d.docker(["push", `${host}/tok/busybox:1`]);
    expect(push.stdout).toMatch(/digest: sha256:[0-9a-f]{64}/);
    await d.docker(["rmi", `${host}/tok/busybox:1`]);
    const pull = await d.docker(["pull", `${host}/tok/busybox:1`]);
    expect(pull.stdout).toMatch(/Digest: sha256:[0-9a-f]{64}/);
    expect(tokenReg!.logs()).toMatch(/dora "GET \/token\?/);

    await d.docker(["login", host, "-u", "eve", "--password-stdin"], { input: "eve-pass" });
    await d.docker(["tag", "strata-test/busybox:base", `${host}/tok/eve:1`]);
    const before = tokenReg!.logs().length;
    await expect(d.docker(["push", `${host}/tok/eve:1`])).rejects.toThrow(/denied: requested access/);
    // The refusal is final: docker tries a mount and an upload once, it does not retry.
    const uploads = tokenReg!
      .logs()
      .slice(before)
      .match(/eve "POST \/v2\/tok\/eve\/blobs\/uploads\//g);
    expect(uploads?.length).toBeLessThanOrEqual(2);
    await d.docker(["rmi", `${host}/tok/busybox:1`]);
    const evePull = await d.docker(["pull", `${host}/tok/busybox:1`]);
    expect(evePull.stdout).toMatch(/Downloaded newer image|Image is up to date/);
  });
});
