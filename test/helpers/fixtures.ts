import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { REPO } from "./cli.js";

const CACHE = path.join(os.tmpdir(), "strata-test-fixtures");

/** The busybox rootfs tar made by scripts/make-busybox-rootfs.sh, built once per machine. */
export function busyboxRootfs(): string {
  mkdirSync(CACHE, { recursive: true });
  const out = path.join(CACHE, "busybox-rootfs.tar");
  if (!existsSync(out)) {
    const tmp = `${out}.${process.pid}.tmp`;
    execFileSync(path.join(REPO, "scripts/make-busybox-rootfs.sh"), [tmp], { stdio: "inherit" });
    execFileSync("mv", [tmp, out]);
  }
  return out;
}
