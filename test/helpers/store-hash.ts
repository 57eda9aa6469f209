import { createHash } from "node:crypto";
import { lstatSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import path from "node:path";

/**
 * A fingerprint of every file under a store root (paths, modes, contents), to prove a
 * failed command left the store exactly as it was. The lock owner note is ignored.
 */
export function hashTree(root: string): string {
  const h = createHash("sha256");
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const p = path.join(dir, name);
      const rel = path.relative(root, p);
      if (rel === "meta/lock.owner") continue;
      const st = lstatSync(p);
      h.update(`${rel}\0${st.mode}\0`);
      if (st.isDirectory()) walk(p);
      else if (st.isSymbolicLink()) h.update(readlinkSync(p));
      else h.update(readFileSync(p));
    }
  };
  walk(root);
  return h.digest("hex");
}
