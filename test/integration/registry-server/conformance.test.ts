/**
 * The distribution-spec conformance walk (shared/testdata/oci-schemas/distribution-endpoints.md),
 * end-1 .. end-14 with success and failure cases, over real HTTP against real processes:
 * Strata's registry and Debian's CNCF distribution 2.8, with the same assertions. Where the
 * two differ, `differs(strata, distribution)` names both answers; README.md's compatibility
 * list is this file's list of `differs` calls.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  blob,
  makeImage,
  OCI_INDEX,
  OCI_MANIFEST,
  pushBlob,
  pushImage,
  sha256,
  type TestImage,
} from "../../helpers/registry-images.js";
import {
  errorCodes,
  haveTool,
  type RegistryProcess,
  request,
  startDistribution,
  startStrata,
} from "../../helpers/registry-servers.js";

const impls = [
  { kind: "strata" as const, start: () => startStrata() },
  ...(haveTool("docker-registry")
    ? [{ kind: "distribution" as const, start: () => startDistribution() }]
    : []),
];

describe.each(impls)("distribution-spec conformance: $kind", ({ kind, start }) => {
  let reg: RegistryProcess;
  let base: string;
  /** The answer of each implementation where they differ (see README.md, compatibility). */
  const differs = <T>(strata: T, distribution: T): T => (kind === "strata" ? strata : distribution);
  const repo = "conformance/app";
  let img: TestImage;

  beforeAll(async () => {
    reg = await start();
    base = reg.url;
    img = await makeImage({ layers: 2 });
  });
  afterAll(async () => {
    await reg?.stop();
  });

  describe("end-1 ping", () => {
    it("GET /v2/ is 200 with the API version header", async () => {
      const r = await request("GET", `${base}/v2/`);
      expect(r.status).toBe(200);
      expect(r.header("docker-distribution-api-version")).toBe("registry/2.0");
    });
  });

  describe("end-4 .. end-6, end-13, end-14 uploads", () => {
    it("end-4b monolithic POST ?digest= stores the blob (201; distribution: 202, continue with PUT)", async () => {
      const b = blob("monolithic post blob");
      const r = await request("POST", `${base}/v2/${repo}/blobs/uploads/?digest=${b.digest}`, {
        headers: { "Content-Type": "application/octet-stream" },
        body: b.data,
      });
      expect(r.status).toBe(differs(201, 202));
      if (r.status === 201) {
        expect(r.header("location")).toContain(b.digest);
        expect(r.header("docker-content-digest")).toBe(b.digest);
      } else {
        // The spec's fallback: 202 means "not supported", the client PUTs the blob.
        const u = new URL(r.header("location")!, base);
        u.searchParams.set("digest", b.digest);
        expect((await request("PUT", u.toString(), { body: b.data })).status).toBe(201);
      }
      const head = await request("HEAD", `${base}/v2/${repo}/blobs/${b.digest}`);
      expect(head.status).toBe(200);
      expect(head.header("content-length")).toBe(String(b.size));
    });

    it("end-4b with a wrong digest is 400 DIGEST_INVALID and stores nothing", async () => {
      const b = blob("the real bytes");
      const lie = sha256("other bytes");
      const r = await request("POST", `${base}/v2/${repo}/blobs/uploads/?digest=${lie}`, {
        headers: { "Content-Type": "application/octet-stream" },
        body: b.data,
      });
      expect(r.status).toBe(differs(400, 202));
      if (kind === "strata") expect(errorCodes(r)).toContain("DIGEST_INVALID");
      expect((await request("HEAD", `${base}/v2/${repo}/blobs/${lie}`)).status).toBe(404);
      expect((await request("HEAD", `${base}/v2/${repo}/blobs/${b.digest}`)).status).toBe(404);
    });

    it("end-4a + end-6 session then PUT with the whole blob (202, 201)", async () => {
      const b = blob("session put blob");
      const post = await request("POST", `${base}/v2/${repo}/blobs/uploads/`, {
        headers: { "Content-Length": "0" },
      });
      expect(post.status).toBe(202);
      const loc = post.header("location")!;
      expect(loc).toBeTruthy();
      expect(post.header("docker-upload-uuid")).toBeTruthy();
      expect(post.header("range")).toBe("0-0");
      const u = new URL(loc, base);
      u.searchParams.set("digest", b.digest);
      const put = await request("PUT", u.toString(), {
        headers: { "Content-Type": "application/octet-stream" },
        body: b.data,
      });
      expect(put.status).toBe(201);
      expect(put.header("docker-content-digest")).toBe(b.digest);
      const get = await request("GET", `${base}${put.header("location")!.replace(/^https?:\/\/[^/]+/, "")}`);
      expect(get.status).toBe(200);
      expect(get.body.equals(b.data)).toBe(true);
    });

    it("end-5 chunks in order, end-13 status, end-6 close", async () => {
      const data = Buffer.from("0123456789abcdefghij");
      const digest = sha256(data);
      const post = await request("POST", `${base}/v2/${repo}/blobs/uploads/`, {
        headers: { "Content-Length": "0" },
      });
      expect(post.status).toBe(202);
      let loc = new URL(post.header("location")!, base).toString();

      const p1 = await request("PATCH", loc, {
        headers: { "Content-Type": "application/octet-stream", "Content-Range": "0-9" },
        body: data.subarray(0, 10),
      });
      expect(p1.status).toBe(202);
      expect(p1.header("range")).toBe("0-9");
      loc = new URL(p1.header("location")!, base).toString();

      const st = await request("GET", loc);
      expect(st.status).toBe(204);
      expect(st.header("range")).toBe("0-9");

      const p2 = await request("PATCH", loc, {
        headers: { "Content-Type": "application/octet-stream", "Content-Range": "10-19" },
        body: data.subarray(10),
      });
      expect(p2.status).toBe(202);
      expect(p2.header("range")).toBe("0-19");
      const u = new URL(p2.header("location")!, base);
      u.searchParams.set("digest", digest);
      const put = await request("PUT", u.toString(), { headers: { "Content-Length": "0" } });
      expect(put.status).toBe(201);
      const get = await request("GET", `${base}/v2/${repo}/blobs/${digest}`);
      expect(get.body.equals(data)).toBe(true);
    });

    it("end-5 a chunk out of order is 416 and leaves the session as it was (distribution: appends it, 202)", async () => {
      const post = await request("POST", `${base}/v2/${repo}/blobs/uploads/`, {
        headers: { "Content-Length": "0" },
      });
      let loc = new URL(post.header("location")!, base).toString();
      const p1 = await request("PATCH", loc, { headers: { "Content-Range": "0-4" }, body: "01234" });
      expect(p1.status).toBe(202);
      loc = new URL(p1.header("location")!, base).toString();
      const bad = await request("PATCH", loc, { headers: { "Content-Range": "10-14" }, body: "abcde" });
      expect(bad.status).toBe(differs(416, 202));
      // Strata answers with the range it has, so the client can resume from there.
      expect(bad.header("range")).toBe(differs("0-4", "0-9"));
      const st = await request("GET", new URL(bad.header("location") ?? loc, base).toString());
      expect(st.header("range")).toBe(differs("0-4", "0-9"));
    });

    it("end-5 a Content-Range that disagrees with Content-Length is 416 (distribution: takes the body, 202)", async () => {
      const post = await request("POST", `${base}/v2/${repo}/blobs/uploads/`, {
        headers: { "Content-Length": "0" },
      });
      const loc = new URL(post.header("location")!, base).toString();
      const bad = await request("PATCH", loc, {
        headers: { "Content-Range": "0-9", "Content-Length": "5" },
        body: "01234",
      });
      expect(bad.status).toBe(differs(416, 202));
      if (kind === "strata") expect(errorCodes(bad)).toContain("BLOB_UPLOAD_INVALID");
      const st = await request("GET", new URL(bad.header("location") ?? loc, base).toString());
      expect(st.header("range")).toBe(differs("0-0", "0-4"));
    });

    it("end-6 with a digest that does not match is 400 DIGEST_INVALID", async () => {
      const post = await request("POST", `${base}/v2/${repo}/blobs/uploads/`, {
        headers: { "Content-Length": "0" },
      });
      const u = new URL(post.header("location")!, base);
      const lie = sha256("not these bytes");
      u.searchParams.set("digest", lie);
      const put = await request("PUT", u.toString(), {
        headers: { "Content-Type": "application/octet-stream" },
        body: "these bytes",
      });
      expect(put.status).toBe(400);
      expect(errorCodes(put)).toContain("DIGEST_INVALID");
      expect((await request("HEAD", `${base}/v2/${repo}/blobs/${lie}`)).status).toBe(404);
    });

    it("end-6 with a malformed digest is 400 DIGEST_INVALID", async () => {
      const post = await request("POST", `${base}/v2/${repo}/blobs/uploads/`, {
        headers: { "Content-Length": "0" },
      });
      const u = new URL(post.header("location")!, base);
      u.searchParams.set("digest", "sha256:nothex");
      const put = await request("PUT", u.toString(), { body: "x" });
      expect(put.status).toBe(400);
      expect(errorCodes(put)).toContain("DIGEST_INVALID");
    });

    it("end-14 DELETE cancels a session; then end-13 is 404 BLOB_UPLOAD_UNKNOWN", async () => {
      const post = await request("POST", `${base}/v2/${repo}/blobs/uploads/`, {
        headers: { "Content-Length": "0" },
      });
      const loc = new URL(post.header("location")!, base).toString();
      const del = await request("DELETE", loc);
      expect(del.status).toBe(204);
      const st = await request("GET", loc);
      expect(st.status).toBe(404);
      expect(errorCodes(st)).toContain("BLOB_UPLOAD_UNKNOWN");
    });

    it("an unknown session is 404 BLOB_UPLOAD_UNKNOWN for GET, PATCH and PUT", async () => {
      const loc = `${base}/v2/${repo}/blobs/uploads/3f9a4a2e-0000-4000-8000-000000000000`;
      const g = await request("GET", loc);
      expect(g.status).toBe(404);
      expect(errorCodes(g)).toContain(differs("BLOB_UPLOAD_UNKNOWN", "BLOB_UPLOAD_INVALID"));
      const p = await request("PATCH", loc, { body: "abc" });
      expect(p.status).toBe(404);
      const put = await request("PUT", `${loc}?digest=${sha256("abc")}`, { body: "abc" });
      expect(put.status).toBe(404);
    });

    it("a session of one repository is unknown in another", async () => {
      const post = await request("POST", `${base}/v2/${repo}/blobs/uploads/`, {
        headers: { "Content-Length": "0" },
      });
      const id = post.header("docker-upload-uuid")!;
      const other = await request("GET", `${base}/v2/conformance/other/blobs/uploads/${id}`);
      expect(other.status).toBe(404);
    });

    it("POST announces OCI-Chunk-Min-Length (Strata) ", async () => {
      const post = await request("POST", `${base}/v2/${repo}/blobs/uploads/`, {
        headers: { "Content-Length": "0" },
      });
      expect(post.header("oci-chunk-min-length") !== undefined).toBe(differs(true, false));
    });
  });

  describe("end-2 blobs and end-10 delete", () => {
    it("HEAD and GET a blob; a blob of another repository is 404 here", async () => {
      const b = blob("blob for get");
      await pushBlob(base, repo, b);
      const head = await request("HEAD", `${base}/v2/${repo}/blobs/${b.digest}`);
      expect(head.status).toBe(200);
      expect(head.header("docker-content-digest")).toBe(b.digest);
      expect(head.header("content-length")).toBe(String(b.size));
      const get = await request("GET", `${base}/v2/${repo}/blobs/${b.digest}`);
      expect(get.status).toBe(200);
      expect(get.body.equals(b.data)).toBe(true);
      const elsewhere = await request("GET", `${base}/v2/conformance/elsewhere/blobs/${b.digest}`);
      expect(elsewhere.status).toBe(404);
      expect(errorCodes(elsewhere)).toContain("BLOB_UNKNOWN");
    });

    it("a missing blob is 404 BLOB_UNKNOWN", async () => {
      const r = await request("GET", `${base}/v2/${repo}/blobs/${sha256("never pushed")}`);
      expect(r.status).toBe(404);
      expect(errorCodes(r)).toContain("BLOB_UNKNOWN");
    });

    it("Range requests give 206 with the slice", async () => {
      const b = blob("0123456789");
      await pushBlob(base, repo, b);
      const r = await request("GET", `${base}/v2/${repo}/blobs/${b.digest}`, {
        headers: { Range: "bytes=2-5" },
      });
      expect(r.status).toBe(206);
      expect(r.body.toString()).toBe("2345");
      expect(r.header("content-range")).toBe("bytes 2-5/10");
    });

    it("an unsatisfiable Range is 416 (distribution: the connection is dropped)", async () => {
      const b = blob("short");
      await pushBlob(base, repo, b);
      const r = await request("GET", `${base}/v2/${repo}/blobs/${b.digest}`, {
        headers: { Range: "bytes=100-200" },
      }).then(
        (x) => x.status,
        (e: Error) => e.message,
      );
      expect(r).toBe(differs<number | string>(416, "aborted"));
    });

    it("ETag and If-None-Match give 304", async () => {
      const b = blob("etag blob");
      await pushBlob(base, repo, b);
      const r = await request("GET", `${base}/v2/${repo}/blobs/${b.digest}`);
      const etag = r.header("etag")!;
      expect(etag).toContain(b.digest);
      const again = await request("GET", `${base}/v2/${repo}/blobs/${b.digest}`, {
        headers: { "If-None-Match": etag },
      });
      expect(again.status).toBe(304);
    });

    it("end-10 DELETE blob is 202, then 404; a missing blob is 404", async () => {
      const b = blob("blob to delete");
      await pushBlob(base, repo, b);
      const del = await request("DELETE", `${base}/v2/${repo}/blobs/${b.digest}`);
      expect(del.status).toBe(202);
      expect((await request("HEAD", `${base}/v2/${repo}/blobs/${b.digest}`)).status).toBe(404);
      const again = await request("DELETE", `${base}/v2/${repo}/blobs/${b.digest}`);
      expect(again.status).toBe(404);
      expect(errorCodes(again)).toContain("BLOB_UNKNOWN");
    });

    it("a malformed digest in a blob URL is 400 DIGEST_INVALID", async () => {
      const r = await request("GET", `${base}/v2/${repo}/blobs/sha256:zzz`);
      expect(r.status).toBe(400);
      expect(errorCodes(r)).toContain("DIGEST_INVALID");
    });
  });

  describe("end-11 cross-repository mount", () => {
    it("mounts a blob from a repository that has it (201)", async () => {
      const b = blob("mount me");
      await pushBlob(base, "conformance/source", b);
      const r = await request(
        "POST",
        `${base}/v2/conformance/target/blobs/uploads/?mount=${b.digest}&from=conformance/source`,
        {
          headers: { "Content-Length": "0" },
        },
      );
      expect(r.status).toBe(201);
      expect(r.header("docker-content-digest")).toBe(b.digest);
      const head = await request("HEAD", `${base}/v2/conformance/target/blobs/${b.digest}`);
      expect(head.status).toBe(200);
    });

    it("falls back to an upload session when the source lacks the blob (202)", async () => {
      const d = sha256("not anywhere");
      const r = await request(
        "POST",
        `${base}/v2/conformance/target/blobs/uploads/?mount=${d}&from=conformance/source`,
        {
          headers: { "Content-Length": "0" },
        },
      );
      expect(r.status).toBe(202);
      expect(r.header("location")).toContain("/blobs/uploads/");
      expect((await request("HEAD", `${base}/v2/conformance/target/blobs/${d}`)).status).toBe(404);
    });
  });

  describe("end-3 and end-7 manifests", () => {
    it("end-7a PUT by tag (201), end-3 GET/HEAD by tag and digest", async () => {
      await pushImage(base, repo, "v1", img);
      const get = await request("GET", `${base}/v2/${repo}/manifests/v1`, {
        headers: { Accept: OCI_MANIFEST },
      });
      expect(get.status).toBe(200);
      expect(get.body.equals(img.manifest)).toBe(true);
      expect(get.header("content-type")).toBe(OCI_MANIFEST);
      expect(get.header("docker-content-digest")).toBe(img.digest);
      const head = await request("HEAD", `${base}/v2/${repo}/manifests/${img.digest}`, {
        headers: { Accept: OCI_MANIFEST },
      });
      expect(head.status).toBe(200);
      expect(head.header("content-length")).toBe(String(img.manifest.length));
      expect(head.header("docker-content-digest")).toBe(img.digest);
      const byDigest = await request("GET", `${base}/v2/${repo}/manifests/${img.digest}`, {
        headers: { Accept: OCI_MANIFEST },
      });
      expect(byDigest.body.equals(img.manifest)).toBe(true);
    });

    it("PUT answers with Location and Docker-Content-Digest", async () => {
      const im = await makeImage();
      for (const b of [im.config, ...im.layers]) await pushBlob(base, repo, b);
      const r = await request("PUT", `${base}/v2/${repo}/manifests/v2`, {
        headers: { "Content-Type": OCI_MANIFEST },
        body: im.manifest,
      });
      expect(r.status).toBe(201);
      expect(r.header("docker-content-digest")).toBe(im.digest);
      expect(r.header("location")).toContain(im.digest);
    });

    it("end-7a PUT by digest (201); a digest that does not match is 400 DIGEST_INVALID", async () => {
      const im = await makeImage();
      for (const b of [im.config, ...im.layers]) await pushBlob(base, repo, b);
      const ok = await request("PUT", `${base}/v2/${repo}/manifests/${im.digest}`, {
        headers: { "Content-Type": OCI_MANIFEST },
        body: im.manifest,
      });
      expect(ok.status).toBe(201);
      const bad = await request("PUT", `${base}/v2/${repo}/manifests/${sha256("x")}`, {
        headers: { "Content-Type": OCI_MANIFEST },
        body: im.manifest,
      });
      expect(bad.status).toBe(400);
      expect(errorCodes(bad)).toContain("DIGEST_INVALID");
    });

    it("a manifest whose blobs are missing is 400 MANIFEST_BLOB_UNKNOWN and is not stored", async () => {
      const im = await makeImage();
      await pushBlob(base, repo, im.config); // layers missing
      const r = await request("PUT", `${base}/v2/${repo}/manifests/missing-layers`, {
        headers: { "Content-Type": OCI_MANIFEST },
        body: im.manifest,
      });
      expect(r.status).toBe(400);
      expect(errorCodes(r)).toContain("MANIFEST_BLOB_UNKNOWN");
      expect((await request("GET", `${base}/v2/${repo}/manifests/missing-layers`)).status).toBe(404);
    });

    it("a manifest whose blobs are only in another repository is rejected", async () => {
      const im = await makeImage();
      for (const b of [im.config, ...im.layers]) await pushBlob(base, "conformance/elsewhere2", b);
      const r = await request("PUT", `${base}/v2/${repo}/manifests/foreign-blobs`, {
        headers: { "Content-Type": OCI_MANIFEST },
        body: im.manifest,
      });
      expect(r.status).toBe(400);
      expect(errorCodes(r)).toContain("MANIFEST_BLOB_UNKNOWN");
    });

    it("invalid JSON is 400 MANIFEST_INVALID", async () => {
      const r = await request("PUT", `${base}/v2/${repo}/manifests/broken`, {
        headers: { "Content-Type": OCI_MANIFEST },
        body: "{not json",
      });
      expect(r.status).toBe(400);
      expect(errorCodes(r)).toContain("MANIFEST_INVALID");
    });

    it("a manifest without config is 400 MANIFEST_INVALID", async () => {
      const r = await request("PUT", `${base}/v2/${repo}/manifests/noconfig`, {
        headers: { "Content-Type": OCI_MANIFEST },
        body: JSON.stringify({ schemaVersion: 2, mediaType: OCI_MANIFEST, layers: [] }),
      });
      expect(r.status).toBe(400);
      expect(errorCodes(r)).toContain(differs("MANIFEST_INVALID", "MANIFEST_BLOB_UNKNOWN"));
    });

    it("a Content-Type that contradicts mediaType is 400", async () => {
      const r = await request("PUT", `${base}/v2/${repo}/manifests/mismatch`, {
        headers: { "Content-Type": OCI_INDEX },
        body: img.manifest,
      });
      expect(r.status).toBe(400);
    });

    it("end-3 unknown tag is 404 MANIFEST_UNKNOWN; unknown repository is 404", async () => {
      const r = await request("GET", `${base}/v2/${repo}/manifests/nope`);
      expect(r.status).toBe(404);
      expect(errorCodes(r)).toContain("MANIFEST_UNKNOWN");
      const u = await request("GET", `${base}/v2/conformance/never/manifests/latest`);
      expect(u.status).toBe(404);
      expect(errorCodes(u)).toContain(differs("NAME_UNKNOWN", "MANIFEST_UNKNOWN"));
    });

    it("an index needs its child manifests in the repository", async () => {
      const child = await makeImage();
      const index = (manifests: unknown[]) =>
        Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests }));
      const desc = {
        mediaType: OCI_MANIFEST,
        digest: child.digest,
        size: child.manifest.length,
        platform: { architecture: "amd64", os: "linux" },
      };
      const missing = await request("PUT", `${base}/v2/${repo}/manifests/index-missing`, {
        headers: { "Content-Type": OCI_INDEX },
        body: index([desc]),
      });
      expect(missing.status).toBe(400);
      expect(errorCodes(missing)).toContain("MANIFEST_BLOB_UNKNOWN");
      await pushImage(base, repo, child.digest, child);
      const raw = index([desc]);
      const ok = await request("PUT", `${base}/v2/${repo}/manifests/multi`, {
        headers: { "Content-Type": OCI_INDEX },
        body: raw,
      });
      expect(ok.status).toBe(201);
      const get = await request("GET", `${base}/v2/${repo}/manifests/multi`, {
        headers: { Accept: OCI_INDEX },
      });
      expect(get.header("content-type")).toBe(OCI_INDEX);
      expect(get.body.equals(raw)).toBe(true);
    });

    it("Docker schema 2 manifests round-trip with their media type", async () => {
      const im = await makeImage({ docker: true });
      await pushImage(base, repo, "docker", im);
      const get = await request("GET", `${base}/v2/${repo}/manifests/docker`, {
        headers: { Accept: "application/vnd.docker.distribution.manifest.v2+json" },
      });
      expect(get.status).toBe(200);
      expect(get.header("content-type")).toBe("application/vnd.docker.distribution.manifest.v2+json");
      expect(get.body.equals(im.manifest)).toBe(true);
    });

    it("an OCI manifest asked for with only Docker types in Accept is not served", async () => {
      const r = await request("GET", `${base}/v2/${repo}/manifests/v1`, {
        headers: { Accept: "application/vnd.docker.distribution.manifest.v2+json" },
      });
      expect(r.status).toBe(404);
      expect(errorCodes(r)).toContain("MANIFEST_UNKNOWN");
    });

    it("ETag and If-None-Match on manifests give 304", async () => {
      const r = await request("GET", `${base}/v2/${repo}/manifests/v1`, {
        headers: { Accept: OCI_MANIFEST, "If-None-Match": `"${img.digest}"` },
      });
      expect(r.status).toBe(304);
    });
  });

  describe("subject and end-12 referrers", () => {
    it("PUT with a subject answers OCI-Subject; referrers lists it and filters by artifactType", async () => {
      const subject = { mediaType: OCI_MANIFEST, digest: img.digest, size: img.manifest.length };
      const sig = await makeImage({
        artifactType: "application/vnd.example.signature",
        subject,
        annotations: { "org.example.kind": "sig" },
      });
      for (const b of [sig.config, ...sig.layers]) await pushBlob(base, repo, b);
      const put = await request("PUT", `${base}/v2/${repo}/manifests/${sig.digest}`, {
        headers: { "Content-Type": OCI_MANIFEST },
        body: sig.manifest,
      });
      expect(put.status).toBe(201);
      expect(put.header("oci-subject")).toBe(differs(img.digest, undefined));
      const sbom = await makeImage({ artifactType: "application/vnd.example.sbom", subject });
      for (const b of [sbom.config, ...sbom.layers]) await pushBlob(base, repo, b);
      await request("PUT", `${base}/v2/${repo}/manifests/${sbom.digest}`, {
        headers: { "Content-Type": OCI_MANIFEST },
        body: sbom.manifest,
      });

      const r = await request("GET", `${base}/v2/${repo}/referrers/${img.digest}`);
      expect(r.status).toBe(differs(200, 404));
      if (kind === "strata") {
        expect(r.header("content-type")).toBe(OCI_INDEX);
        const idx = r.json<{
          manifests: { digest: string; artifactType?: string; annotations?: object }[];
        }>();
        expect(idx.manifests.map((m) => m.digest).sort()).toEqual([sig.digest, sbom.digest].sort());
        const s = idx.manifests.find((m) => m.digest === sig.digest)!;
        expect(s.artifactType).toBe("application/vnd.example.signature");
        expect(s.annotations).toEqual({ "org.example.kind": "sig" });
        const f = await request(
          "GET",
          `${base}/v2/${repo}/referrers/${img.digest}?artifactType=application/vnd.example.sbom`,
        );
        expect(f.header("oci-filters-applied")).toBe("artifactType");
        expect(f.json<{ manifests: { digest: string }[] }>().manifests.map((m) => m.digest)).toEqual([
          sbom.digest,
        ]);
      }
    });

    it("a subject that does not exist is accepted", async () => {
      const subject = { mediaType: OCI_MANIFEST, digest: sha256("absent subject"), size: 10 };
      const a = await makeImage({ artifactType: "application/vnd.example.orphan", subject });
      for (const b of [a.config, ...a.layers]) await pushBlob(base, repo, b);
      const put = await request("PUT", `${base}/v2/${repo}/manifests/${a.digest}`, {
        headers: { "Content-Type": OCI_MANIFEST },
        body: a.manifest,
      });
      expect(put.status).toBe(201);
    });

    it("referrers of a digest with none is an empty index (Strata); a bad digest is 400", async () => {
      const r = await request("GET", `${base}/v2/${repo}/referrers/${sha256("nobody refers")}`);
      expect(r.status).toBe(differs(200, 404));
      if (kind === "strata") expect(r.json<{ manifests: unknown[] }>().manifests).toEqual([]);
      const bad = await request("GET", `${base}/v2/${repo}/referrers/sha256:bad`);
      expect(bad.status).toBe(differs(400, 404));
    });
  });

  describe("end-8 tags and catalog", () => {
    const tagRepo = "conformance/tags";
    beforeAll(async () => {
      const im = await makeImage();
      for (const t of ["d", "a", "c", "b", "e"]) await pushImage(base, tagRepo, t, im);
    });

    it("end-8a lists all tags, sorted lexically (distribution: in storage order)", async () => {
      const r = await request("GET", `${base}/v2/${tagRepo}/tags/list`);
      expect(r.status).toBe(200);
      const body = r.json<{ name: string; tags: string[] }>();
      expect(body.name).toBe(tagRepo);
      expect(differs(body.tags, [...body.tags].sort())).toEqual(["a", "b", "c", "d", "e"]);
    });

    it("end-8b n and last paginate with a Link header (distribution 2.8: ignores n)", async () => {
      const r = await request("GET", `${base}/v2/${tagRepo}/tags/list?n=2`);
      if (kind === "distribution") {
        expect(r.json<{ tags: string[] }>().tags).toHaveLength(5);
        expect(r.header("link")).toBeUndefined();
        return;
      }
      expect(r.json<{ tags: string[] }>().tags).toEqual(["a", "b"]);
      expect(r.header("link")).toMatch(/rel="next"/);
      expect(r.header("link")).toContain("last=b");
      const r2 = await request("GET", `${base}/v2/${tagRepo}/tags/list?n=2&last=b`);
      expect(r2.json<{ tags: string[] }>().tags).toEqual(["c", "d"]);
      const r3 = await request("GET", `${base}/v2/${tagRepo}/tags/list?n=2&last=d`);
      expect(r3.json<{ tags: string[] }>().tags).toEqual(["e"]);
      expect(r3.header("link")).toBeUndefined();
    });

    it("n=0 gives an empty list and no Link", async () => {
      const r = await request("GET", `${base}/v2/${tagRepo}/tags/list?n=0`);
      expect(r.status).toBe(200);
      const tags = r.json<{ tags: string[] | null }>().tags ?? [];
      expect(tags).toHaveLength(differs(0, 5));
      expect(r.header("link")).toBeUndefined();
    });

    it("tags of an unknown repository is 404 NAME_UNKNOWN", async () => {
      const r = await request("GET", `${base}/v2/conformance/nothing/tags/list`);
      expect(r.status).toBe(404);
      expect(errorCodes(r)).toContain("NAME_UNKNOWN");
    });

    it("_catalog lists repositories and paginates", async () => {
      const r = await request("GET", `${base}/v2/_catalog`);
      expect(r.status).toBe(200);
      const repos = r.json<{ repositories: string[] }>().repositories;
      expect(repos).toContain(tagRepo);
      expect(repos).toContain(repo);
      expect([...repos].sort()).toEqual(repos);
      const p = await request("GET", `${base}/v2/_catalog?n=1`);
      expect(p.json<{ repositories: string[] }>().repositories).toHaveLength(1);
      expect(p.header("link")).toMatch(/rel="next"/);
    });
  });

  describe("end-9 manifest delete", () => {
    it("DELETE by digest is 202; the manifest and its tag are gone", async () => {
      const im = await makeImage();
      await pushImage(base, repo, "todelete", im);
      const del = await request("DELETE", `${base}/v2/${repo}/manifests/${im.digest}`);
      expect(del.status).toBe(202);
      expect((await request("GET", `${base}/v2/${repo}/manifests/${im.digest}`)).status).toBe(404);
      expect((await request("GET", `${base}/v2/${repo}/manifests/todelete`)).status).toBe(404);
      const again = await request("DELETE", `${base}/v2/${repo}/manifests/${im.digest}`);
      expect(again.status).toBe(404);
    });

    it("DELETE by tag removes only the tag (Strata 202; distribution refuses)", async () => {
      const im = await makeImage();
      await pushImage(base, repo, "tagonly", im);
      const del = await request("DELETE", `${base}/v2/${repo}/manifests/tagonly`);
      expect(del.status).toBe(differs(202, 400));
      const get = await request("GET", `${base}/v2/${repo}/manifests/${im.digest}`, {
        headers: { Accept: OCI_MANIFEST },
      });
      expect(get.status).toBe(200);
    });
  });

  describe("names", () => {
    it("an invalid repository name is 400 NAME_INVALID (distribution: 404)", async () => {
      const r = await request("GET", `${base}/v2/Upper/Case/tags/list`);
      expect(r.status).toBe(differs(400, 404));
      if (kind === "strata") expect(errorCodes(r)).toContain("NAME_INVALID");
    });

    it("a name with .. is refused and reaches no file", async () => {
      const r = await request("GET", `${base}/v2/a/../../etc/tags/list`);
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
    });
  });
});
