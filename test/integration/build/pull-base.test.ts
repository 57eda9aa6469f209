import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata, tempDir } from "../../helpers/cli.js";
import { busyboxRootfs } from "../../helpers/fixtures.js";
import { clientEnv } from "../../helpers/registry-client.js";
import { type RegistryProcess, startStrata } from "../../helpers/registry-servers.js";
import { requires } from "../../helpers/tools.js";

const need = requires({ tools: ["runc"], root: true });

describe.runIf(need.ok)("build pulls a base image that is not in the store", () => {
  const t = tempDir();
  let reg: RegistryProcess;
  let env: NodeJS.ProcessEnv;
  const ctx = path.join(t.dir, "ctx");

  beforeAll(async () => {
    reg = await startStrata();
    env = clientEnv().env;
    const src = path.join(t.dir, "src");
    expect(
      (await strata(src, ["import", "-c", 'CMD ["sh"]', busyboxRootfs(), `${reg.host}/lib/base:1`])).code,
    ).toBe(0);
    const push = await strata(src, ["push", `${reg.host}/lib/base:1`], { env });
    expect(push.code, push.stderr).toBe(0);
    mkdirSync(ctx);
    writeFileSync(
      path.join(ctx, "Dockerfile"),
      `FROM ${reg.host}/lib/base:1\nRUN echo pulled > /x\nCMD ["cat", "/x"]\n`,
    );
  }, 120_000);
  afterAll(async () => {
    await reg?.stop();
    t.cleanup();
  });

  it("a FROM image missing locally is pulled from its registry, then used", async () => {
    const root = path.join(t.dir, "empty");
    const r = await strata(root, ["build", "-t", "app:1", ctx], { env });
    expect(r.code, r.stderr).toBe(0);
    const images = (await strata(root, ["images", "--format", "{{.Repository}}:{{.Tag}}"])).stdout
      .split("\n")
      .filter(Boolean)
      .sort();
    expect(images).toEqual(["app:1", `${reg.host}/lib/base:1`].sort());
    const [base] = JSON.parse((await strata(root, ["inspect", `${reg.host}/lib/base:1`])).stdout);
    expect(base.RepoDigests[0]).toMatch(new RegExp(`^${reg.host}/lib/base@sha256:[a-f0-9]{64}$`));
    const out = await strata(root, ["run", "--rm", "--network", "none", "app:1"]);
    expect(out.stdout).toBe("pulled\n");
  });

  it("--pull re-resolves a base that is present; an unreachable registry is a clear error", async () => {
    const root = path.join(t.dir, "again");
    expect((await strata(root, ["build", "-q", "-t", "app:1", ctx], { env })).code).toBe(0);
    const again = await strata(root, ["build", "--pull", "-t", "app:2", ctx], { env });
    expect(again.code, again.stderr).toBe(0);
    const offline = path.join(t.dir, "offline");
    writeFileSync(path.join(ctx, "Dockerfile.gone"), 'FROM 127.0.0.1:1/nobody/base:1\nCMD ["true"]\n');
    const r = await strata(offline, ["build", "-f", path.join(ctx, "Dockerfile.gone"), ctx], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /ERROR: failed to solve: failed to resolve source metadata for 127\.0\.0\.1:1\/nobody\/base:1: /,
    );
    expect((await strata(offline, ["images", "-q"])).stdout).toBe("");
  });
});
