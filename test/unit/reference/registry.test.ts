import { describe, expect, it } from "vitest";
import {
  familiarName,
  indexInfo,
  isDockerHub,
  isLoopbackHost,
  parseIPv6,
  parseNormalizedNamed,
  registryHost,
  repositoryName,
  splitHostPort,
  trimNamed,
} from "../../../src/reference/index.js";
import { label, loadCases } from "./cases.js";

interface InfoCase {
  input: string;
  trimmedName: string;
  path: string;
  familiarName: string;
  index: { name: string; official: boolean; secure: boolean };
}
const data = loadCases<{ cases: InfoCase[] }>("repository-info-cases.json");

describe("repository-info-cases.json: trimNamed and indexInfo (docker/cli TestNewIndexInfo)", () => {
  it("has the 24 upstream cases", () => expect(data.cases.length).toBe(24));
  data.cases.forEach((c, i) => {
    it(`#${i} ${c.input}`, () => {
      const trimmed = trimNamed(parseNormalizedNamed(c.input));
      const got = {
        trimmedName: repositoryName(trimmed),
        path: trimmed.path,
        familiarName: familiarName(trimmed),
        index: indexInfo(trimmed),
      };
      const want = { trimmedName: c.trimmedName, path: c.path, familiarName: c.familiarName, index: c.index };
      expect(got, `trimNamed(parseNormalizedNamed(${label(c.input)}))`).toEqual(want);
    });
  });

  it("trimNamed drops a tag and a digest (derived: each input with both added)", () => {
    const d = `sha256:${"b".repeat(64)}`;
    for (const c of data.cases) {
      const r = trimNamed(parseNormalizedNamed(`${c.input}:v1@${d}`));
      expect(r, `trimNamed(${c.input}:v1@…)`).toEqual({ domain: r.domain, path: c.path });
      expect(repositoryName(r)).toBe(c.trimmedName);
    }
  });
});

describe("registry hosts (our own cases)", () => {
  it("Docker Hub's domains map to registry-1.docker.io; others are contacted as written", () => {
    const cases: [string, boolean, string][] = [
      ["docker.io", true, "registry-1.docker.io"],
      ["index.docker.io", true, "registry-1.docker.io"],
      ["registry-1.docker.io", false, "registry-1.docker.io"],
      ["localhost:5000", false, "localhost:5000"],
      ["[::1]:5000", false, "[::1]:5000"],
      ["ghcr.io", false, "ghcr.io"],
    ];
    for (const [domain, hub, host] of cases) {
      expect({ hub: isDockerHub(domain), host: registryHost(domain) }, domain).toEqual({ hub, host });
    }
  });

  it("isLoopbackHost follows docker/cli's isInsecure without DNS", () => {
    const cases: [string, boolean][] = [
      ["localhost", true],
      ["LocalHost:5000", true],
      ["127.0.0.1", true],
      ["127.255.0.9:80", true],
      ["128.0.0.1", false],
      ["127.0.0.01", false],
      ["[::1]:5000", true],
      ["::1", true],
      ["0:0:0:0:0:0:0:1", true],
      ["[::ffff:127.0.0.1]:5000", true],
      ["[::ffff:7f00:1]:5000", true],
      ["[::127.0.0.1]:5000", false],
      ["[::2]:8000", false],
      ["[::1]", false],
      ["example.com:5000", false],
      ["localhost.localdomain", false],
      ["", false],
    ];
    for (const [host, want] of cases)
      expect(isLoopbackHost(host), `isLoopbackHost(${label(host)})`).toBe(want);
  });

  it("indexInfo of a raw reference normalises index.docker.io", () => {
    expect(indexInfo({ domain: "index.docker.io", path: "library/x" })).toEqual({
      name: "docker.io",
      official: true,
      secure: true,
    });
  });

  it("splitHostPort follows Go's net.SplitHostPort", () => {
    const cases: [string, { host: string; port: string } | undefined][] = [
      ["localhost:5000", { host: "localhost", port: "5000" }],
      ["[::1]:5000", { host: "::1", port: "5000" }],
      ["host:", { host: "host", port: "" }],
      ["localhost", undefined],
      ["[::1]", undefined],
      ["::1", undefined],
      ["[::1]x:5", undefined],
      ["a[b]:5", undefined],
      ["a:]", undefined],
    ];
    for (const [s, want] of cases) expect(splitHostPort(s), `splitHostPort(${label(s)})`).toEqual(want);
  });

  it("parseIPv6 reads the RFC 4291 text forms", () => {
    const cases: [string, number[] | undefined][] = [
      ["::", [0, 0, 0, 0, 0, 0, 0, 0]],
      ["::1", [0, 0, 0, 0, 0, 0, 0, 1]],
      ["2001:db8::", [0x2001, 0xdb8, 0, 0, 0, 0, 0, 0]],
      ["1:2:3:4:5:6:7:8", [1, 2, 3, 4, 5, 6, 7, 8]],
      ["1:2:3:4:5:6:7::", [1, 2, 3, 4, 5, 6, 7, 0]],
      ["::ffff:1.2.3.4", [0, 0, 0, 0, 0, 0xffff, 0x102, 0x304]],
      ["1:2:3:4:5:6:7:8:9", undefined],
      ["1:2:3:4:5:6:7:8::", undefined],
      ["1::2::3", undefined],
      [":::", undefined],
      [":1::", undefined],
      ["12345::", undefined],
      ["fe80::1%eth0", undefined],
      ["1.2.3.4::", undefined],
      ["1:2:3:4:5:6:7", undefined],
    ];
    for (const [s, want] of cases) expect(parseIPv6(s), `parseIPv6(${label(s)})`).toEqual(want);
  });
});
