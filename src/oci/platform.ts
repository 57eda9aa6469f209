import { StrataError } from "../util/index.js";
import type { Platform } from "./schema.js";

/** The OCI/Go name of Node's `process.arch`. */
const ARCH: Record<string, string> = {
  x64: "amd64",
  arm64: "arm64",
  arm: "arm",
  ia32: "386",
  ppc64: "ppc64le",
  s390x: "s390x",
  riscv64: "riscv64",
  loong64: "loong64",
  mips: "mips",
  mipsel: "mipsle",
};

/** The platform this process runs on, normalised (linux/amd64, linux/arm64/v8, …). */
export function hostPlatform(): Platform {
  const architecture = ARCH[process.arch] ?? process.arch;
  const os = process.platform === "win32" ? "windows" : process.platform;
  return normalizePlatform({ os, architecture });
}

/** containerd's normalisation: aliases, and default variants that compare equal to none. */
export function normalizePlatform(p: Platform): Platform {
  let { architecture, variant } = p;
  const os = p.os.toLowerCase();
  switch (architecture.toLowerCase()) {
    case "x86_64":
    case "x86-64":
    case "amd64":
      architecture = "amd64";
      if (variant === "v1") variant = undefined;
      break;
    case "aarch64":
    case "arm64":
      architecture = "arm64";
      if (variant === "8" || variant === "v8" || variant === undefined) variant = "v8";
      break;
    case "armhf":
      architecture = "arm";
      variant = "v7";
      break;
    case "armel":
      architecture = "arm";
      variant = "v6";
      break;
    case "arm":
      if (variant === undefined || variant === "7") variant = "v7";
      else if (/^[5-8]$/.test(variant)) variant = `v${variant}`;
      break;
    case "i386":
      architecture = "386";
      break;
  }
  const out: Platform = { os, architecture };
  if (variant) out.variant = variant;
  if (p["os.version"]) out["os.version"] = p["os.version"];
  return out;
}

/** Parse `os[/arch[/variant]]` or `arch` as docker's --platform does. */
export function parsePlatform(s: string): Platform {
  const parts = s.trim().split("/");
  if (parts.some((x) => x === "") || parts.length > 3)
    throw new StrataError(
      "INVALID_ARGUMENT",
      `"${s}": unknown operating system or architecture: invalid argument`,
    );
  const host = hostPlatform();
  if (parts.length === 1) {
    const only = parts[0]!.toLowerCase();
    if (["linux", "windows", "darwin", "freebsd"].includes(only))
      return normalizePlatform({ os: only, architecture: host.architecture, variant: host.variant });
    return normalizePlatform({ os: host.os, architecture: only });
  }
  const p: Platform = { os: parts[0]!, architecture: parts[1]! };
  if (parts[2]) p.variant = parts[2];
  return normalizePlatform(p);
}

export function formatPlatform(p: Platform): string {
  return [p.os, p.architecture, p.variant].filter(Boolean).join("/");
}

/** Does an index entry's platform satisfy the wanted one (after normalisation)? */
export function platformMatches(want: Platform, have: Platform | undefined): boolean {
  if (!have) return false;
  const a = normalizePlatform(want);
  const b = normalizePlatform(have);
  if (a.os !== b.os || a.architecture !== b.architecture) return false;
  if (a.variant === undefined) return true;
  if (a.variant === b.variant) return true;
  // An arm/v7 host also runs v6 and v5 images: accept a lower variant.
  if (a.architecture === "arm" && b.variant && /^v\d$/.test(a.variant) && /^v\d$/.test(b.variant))
    return Number(b.variant.slice(1)) <= Number(a.variant.slice(1));
  return false;
}

/** Pick the best entry of an index for a platform: an exact variant before a compatible one. */
export function selectPlatform<T extends { platform?: Platform }>(
  entries: readonly T[],
  want: Platform,
): T | undefined {
  const ok = entries.filter((e) => platformMatches(want, e.platform));
  const exact = ok.find((e) => normalizePlatform(e.platform!).variant === normalizePlatform(want).variant);
  return exact ?? ok[0];
}
