import { promises as fsp } from "node:fs";
import path from "node:path";
import { StrataError } from "../util/index.js";

export interface ResolvedUser {
  uid: number;
  gid: number;
  additionalGids: number[];
  home: string;
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

async function readLines(file: string): Promise<string[]> {
  try {
    return (await fsp.readFile(file, "utf8")).split("\n");
  } catch {
    return [];
  }
}

/**
 * Resolve a USER string (`name`, `uid`, `name:group`, `uid:gid`) against the image's
 * /etc/passwd and /etc/group, with Docker's rules and messages: numeric ids need no
 * entry; a name without an entry is an error; supplementary groups come from /etc/group.
 * `rootfs` must be the container's root (symlinks inside it are not followed out).
 */
export async function resolveUser(rootfs: string, user: string | undefined): Promise<ResolvedUser> {
  const spec = (user ?? "").trim() || "root";
  const [u, g] = spec.split(":", 2) as [string, string | undefined];
  const passwd: PasswdEntry[] = (await readLines(path.join(rootfs, "etc/passwd")))
    .map((l) => l.split(":"))
    .filter((f) => f.length >= 4 && /^\d+$/.test(f[2]!) && /^\d+$/.test(f[3]!))
    .map((f) => ({ name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5] || "/" }));
  const groups = (await readLines(path.join(rootfs, "etc/group")))
    .map((l) => l.split(":"))
    .filter((f) => f.length >= 3 && /^\d+$/.test(f[2]!))
    .map((f) => ({ name: f[0]!, gid: Number(f[2]), members: (f[3] ?? "").split(",").filter(Boolean) }));

  let entry: PasswdEntry | undefined;
  let uid: number;
  if (/^\d+$/.test(u)) {
    uid = Number(u);
    entry = passwd.find((p) => p.uid === uid);
  } else {
    entry = passwd.find((p) => p.name === u);
    if (!entry)
      throw new StrataError(
        "INVALID_ARGUMENT",
        `unable to find user ${u}: no matching entries in passwd file`,
      );
    uid = entry.uid;
  }
  let gid = entry?.gid ?? 0;
  if (g !== undefined && g !== "") {
    if (/^\d+$/.test(g)) gid = Number(g);
    else {
      const grp = groups.find((x) => x.name === g);
      if (!grp)
        throw new StrataError(
          "INVALID_ARGUMENT",
          `unable to find group ${g}: no matching entries in group file`,
        );
      gid = grp.gid;
    }
  }
  const name = entry?.name;
  const additionalGids =
    g === undefined && name
      ? groups.filter((x) => x.members.includes(name) && x.gid !== gid).map((x) => x.gid)
      : [];
  return { uid, gid, additionalGids, home: entry?.home ?? "/" };
}
