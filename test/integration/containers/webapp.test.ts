import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata, tempDir } from "../../helpers/cli.js";
import { requires } from "../../helpers/tools.js";
import { buildImage, mountsUnder, netnsOf, ok, storeWithBase, waitFor } from "./helpers.js";

const need = requires({ root: true, tools: ["runc", "slirp4netns", "ip"] });

// The seeds' Flask "hello" app, adapted to the busybox base: busybox httpd serves the page.
const DOCKERFILE = `FROM bb:1
WORKDIR /app
COPY www/ /www/
RUN echo "built by strata" > /www/build.txt
EXPOSE 8000
CMD ["httpd", "-f", "-v", "-p", "8000", "-h", "/www"]
`;

describe.skipIf(!need.ok)("end-to-end web app: build, run -d -p, fetch, logs, stop, rm", () => {
  const t = tempDir();
  const root = path.join(t.dir, "store");
  const ids: string[] = [];

  beforeAll(async () => {
    await storeWithBase(root);
    await buildImage(root, "webapp:1.0", DOCKERFILE, { "www/index.html": "<h1>Hello from Strata!</h1>\n" });
  }, 180_000);

  afterAll(async () => {
    for (const id of ids) await strata(root, ["rm", "-f", id]);
    expect(mountsUnder(root)).toEqual([]);
    expect(netnsOf(ids)).toEqual([]);
    t.cleanup();
  });

  it("serves the page on 127.0.0.1:8000, logs the request, stops and is removed", async () => {
    const id = ok(
      await strata(root, ["run", "-d", "--name", "web", "-p", "8000:8000", "webapp:1.0"]),
      "run",
    ).trim();
    ids.push(id);
    expect(id).toMatch(/^[a-f0-9]{64}$/);
    const body = await waitFor(async () => {
      const res = await fetch("http://127.0.0.1:8000/");
      return res.ok ? res.text() : undefined;
    });
    expect(body).toBe("<h1>Hello from Strata!</h1>\n");
    const built = await (await fetch("http://127.0.0.1:8000/build.txt")).text();
    expect(built).toBe("built by strata\n");

    const ps = ok(await strata(root, ["ps"]), "ps");
    const lines = ps.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/);
    expect(lines[1]).toMatch(
      new RegExp(
        `^${id.slice(0, 12)}\\s+webapp:1.0\\s+"httpd -f -v -p 8000…"\\s+.+ago\\s+Up .+\\s+0\\.0\\.0\\.0:8000->8000/tcp\\s+web$`,
      ),
    );
    const inspect = JSON.parse(ok(await strata(root, ["inspect", "web"]), "inspect"))[0];
    expect(inspect.State.Running).toBe(true);
    expect(inspect.NetworkSettings.Ports["8000/tcp"]).toEqual([{ HostIp: "0.0.0.0", HostPort: "8000" }]);
    expect(inspect.Config.Cmd).toEqual(["httpd", "-f", "-v", "-p", "8000", "-h", "/www"]);
    expect(inspect.Config.WorkingDir).toBe("/app");
    expect(inspect.GraphDriver.Name).toBe("overlay2");

    // httpd -v logs each request on stderr: `logs` shows it.
    const logs = await waitFor(async () => {
      const r = await strata(root, ["logs", "web"]);
      return /response:200/.test(r.stderr) ? r : undefined;
    });
    expect(logs.stderr).toMatch(/response:200/);
    const ts = await strata(root, ["logs", "-t", "--tail", "1", "web"]);
    expect(ts.stderr).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z .*response:200\n$/);

    // httpd as PID 1 ignores SIGTERM: -t 1 bounds the wait, then SIGKILL (exit 137).
    const t0 = Date.now();
    ok(await strata(root, ["stop", "-t", "1", "web"]), "stop");
    expect(Date.now() - t0).toBeLessThan(8000);
    const after = ok(await strata(root, ["ps", "-a", "--format", "{{.Names}} {{.Status}}"]), "ps -a");
    expect(after).toMatch(/^web Exited \(137\) .*ago\n$/);
    await expect(fetch("http://127.0.0.1:8000/")).rejects.toThrow();
    expect(ok(await strata(root, ["rm", "web"]), "rm")).toBe("web\n");
    expect(ok(await strata(root, ["ps", "-a", "-q"]), "ps -a -q")).toBe("");
    expect(mountsUnder(root)).toEqual([]);
    expect(netnsOf([id])).toEqual([]);
  });

  it("a port already in use is a clear error (exit 125) and leaves nothing running", async () => {
    const srv = net.createServer();
    const port = await new Promise<number>((resolve) =>
      srv.listen(0, "0.0.0.0", () => resolve((srv.address() as net.AddressInfo).port)),
    );
    try {
      const r = await strata(root, ["run", "-d", "--name", "clash", "-p", `${port}:8000`, "webapp:1.0"]);
      expect(r.code).toBe(125);
      expect(r.stderr).toContain(`Bind for 0.0.0.0:${port} failed: port is already allocated`);
      const ps = ok(await strata(root, ["ps", "-a", "--format", "{{.Names}} {{.State}}"]), "ps");
      expect(ps).toBe("clash exited\n");
      ok(await strata(root, ["rm", "clash"]), "rm");
    } finally {
      srv.close();
    }
  });

  it("-P publishes exposed ports on random host ports", async () => {
    const id = ok(await strata(root, ["run", "-d", "-P", "webapp:1.0"]), "run -P").trim();
    ids.push(id);
    const inspect = JSON.parse(ok(await strata(root, ["container", "inspect", id]), "inspect"))[0];
    const hostPort = Number(inspect.NetworkSettings.Ports["8000/tcp"][0].HostPort);
    expect(hostPort).toBeGreaterThan(0);
    const body = await waitFor(async () => {
      const res = await fetch(`http://127.0.0.1:${hostPort}/`);
      return res.ok ? res.text() : undefined;
    });
    expect(body).toContain("Hello from Strata!");
    ok(await strata(root, ["rm", "-f", id]), "rm -f");
  });
});
