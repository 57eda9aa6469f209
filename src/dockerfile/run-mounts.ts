/**
 * RUN's own flags: `--mount=type=…,…` (BuildKit `commands_runmount.go`), `--device=…`,
 * `--network=…` and `--security=…`.
 */

import { ReasonError } from "./errors.js";
import { csvFields, parseGoBool, parseGoInt, ramInBytes } from "./go-values.js";
import { goQuote, withSuggestion } from "./text.js";

/** `type=` of a mount. */
export type MountType = "bind" | "cache" | "tmpfs" | "secret" | "ssh";
/** `sharing=` of a cache mount. */
export type ShareMode = "shared" | "private" | "locked";
/** `RUN --network=`. */
export type NetworkMode = "default" | "none" | "host";
/** `RUN --security=`. */
export type SecurityMode = "sandbox" | "insecure";

/** One `RUN --mount=…`. Field names follow BuildKit's `instructions.Mount`. */
export interface Mount {
  type: MountType;
  /** Stage name, stage index or image for bind/cache mounts. */
  from: string;
  source: string;
  target: string;
  readOnly: boolean;
  /** tmpfs `size`, in bytes; 0 when not set. */
  sizeLimit: number;
  /** `id` of a cache or secret mount. */
  cacheId: string;
  cacheSharing?: ShareMode;
  required: boolean;
  /** Secret exposed as this environment variable. */
  env?: string;
  mode?: number;
  uid?: number;
  gid?: number;
}

/** One `RUN --device=…` (CDI device). */
export interface Device {
  name: string;
  required: boolean;
}

const MOUNT_TYPES: readonly MountType[] = ["bind", "cache", "tmpfs", "secret", "ssh"];
const SHARE_MODES: readonly ShareMode[] = ["shared", "private", "locked"];
const MOUNT_KEYS = [
  "type",
  "from",
  "source",
  "target",
  "readonly",
  "id",
  "sharing",
  "required",
  "size",
  "mode",
  "uid",
  "gid",
  "src",
  "dst",
  "destination",
  "ro",
  "rw",
  "readwrite",
  "env",
];

/**
 * The parse-time check BuildKit makes before expansion: `from` may not use variables (an alias
 * stage is the workaround).
 */
export function checkMountBeforeExpansion(spec: string): void {
  let fields: string[];
  try {
    fields = csvFields(spec);
  } catch (e) {
    throw new ReasonError(`failed to parse csv mounts: ${(e as Error).message}`);
  }
  for (const field of fields) {
    const eq = field.indexOf("=");
    if (eq < 0) continue;
    if (field.slice(0, eq).toLowerCase() !== "from") continue;
    const value = field.slice(eq + 1);
    const idx = value.indexOf("$");
    if (idx !== -1 && idx !== value.length - 1) {
      throw new ReasonError("'from' doesn't support variable expansion, define alias stage instead");
    }
  }
}

function boolValue(key: string, value: string): boolean {
  const b = parseGoBool(value);
  if (b === undefined) throw new ReasonError(`invalid value for ${key}: ${value}`);
  return b;
}

/**
 * Parses one `--mount` value. `expand` turns each `key=value` value into its final text (word
 * expansion); pass the identity to parse the text as written.
 */
export function parseMount(spec: string, expand: (word: string) => string): Mount {
  let fields: string[];
  try {
    fields = csvFields(spec);
  } catch (e) {
    throw new ReasonError(`failed to parse csv mounts: ${(e as Error).message}`);
  }
  const m: Mount = {
    type: "bind",
    from: "",
    source: "",
    target: "",
    readOnly: false,
    sizeLimit: 0,
    cacheId: "",
    required: false,
  };
  let roAuto = true;
  for (const field of fields) {
    const eq = field.indexOf("=");
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    if (eq < 0) {
      switch (key) {
        case "readonly":
        case "ro":
          m.readOnly = true;
          roAuto = false;
          continue;
        case "readwrite":
        case "rw":
          m.readOnly = false;
          roAuto = false;
          continue;
        case "required":
          if (m.type === "secret" || m.type === "ssh") {
            m.required = true;
            continue;
          }
          throw new ReasonError(`unexpected key '${key}' for mount type '${m.type}'`);
        default:
          throw new ReasonError(`invalid field '${field}' must be a key=value pair`);
      }
    }
    const value = expand(field.slice(eq + 1));
    switch (key) {
      case "type": {
        const v = value.toLowerCase() as MountType;
        if (!MOUNT_TYPES.includes(v)) {
          throw new ReasonError(
            withSuggestion(`unsupported mount type ${goQuote(value)}`, value, MOUNT_TYPES, true),
          );
        }
        m.type = v;
        break;
      }
      case "from":
        m.from = value;
        break;
      case "source":
      case "src":
        m.source = value;
        break;
      case "target":
      case "dst":
      case "destination":
        m.target = value;
        break;
      case "readonly":
      case "ro":
        m.readOnly = boolValue(key, value);
        roAuto = false;
        break;
      case "readwrite":
      case "rw":
        m.readOnly = !boolValue(key, value);
        roAuto = false;
        break;
      case "required":
        if (m.type !== "secret" && m.type !== "ssh") {
          throw new ReasonError(`unexpected key '${key}' for mount type '${m.type}'`);
        }
        m.required = boolValue(key, value);
        break;
      case "size":
        if (m.type !== "tmpfs") throw new ReasonError(`unexpected key '${key}' for mount type '${m.type}'`);
        try {
          m.sizeLimit = ramInBytes(value);
        } catch {
          throw new ReasonError(`invalid value for ${key}: ${value}`);
        }
        break;
      case "id":
        m.cacheId = value;
        break;
      case "sharing": {
        const v = value.toLowerCase() as ShareMode;
        if (!SHARE_MODES.includes(v)) {
          throw new ReasonError(
            withSuggestion(`unsupported sharing value ${goQuote(value)}`, value, SHARE_MODES, true),
          );
        }
        m.cacheSharing = v;
        break;
      }
      case "mode":
        try {
          m.mode = parseGoInt(value, { base: 8, bits: 32, unsigned: true });
        } catch {
          throw new ReasonError(`invalid value ${value} for mode`);
        }
        break;
      case "uid":
        try {
          m.uid = parseGoInt(value, { bits: 32, unsigned: true });
        } catch {
          throw new ReasonError(`invalid value ${value} for uid`);
        }
        break;
      case "gid":
        try {
          m.gid = parseGoInt(value, { bits: 32, unsigned: true });
        } catch {
          throw new ReasonError(`invalid value ${value} for gid`);
        }
        break;
      case "env":
        m.env = value;
        break;
      default:
        throw new ReasonError(withSuggestion(`unexpected key '${key}' in '${field}'`, key, MOUNT_KEYS, true));
    }
  }

  const fileInfoAllowed = m.type === "secret" || m.type === "ssh" || m.type === "cache";
  if (!fileInfoAllowed) {
    if (m.mode !== undefined) throw new ReasonError(`mode not allowed for ${goQuote(m.type)} type mounts`);
    if (m.uid !== undefined) throw new ReasonError(`uid not allowed for ${goQuote(m.type)} type mounts`);
    if (m.gid !== undefined) throw new ReasonError(`gid not allowed for ${goQuote(m.type)} type mounts`);
  }
  if (roAuto) m.readOnly = !(m.type === "cache" || m.type === "tmpfs");
  if (m.type === "secret") {
    if (m.from !== "") throw new ReasonError("secret mount should not have a from");
    if (m.cacheSharing) throw new ReasonError("secret mount should not define sharing");
    if (m.source === "" && m.target === "" && m.cacheId === "") {
      throw new ReasonError("invalid secret mount. one of source, target required");
    }
    if (m.source !== "" && m.cacheId !== "") throw new ReasonError("both source and id can't be set");
  }
  if (m.cacheSharing && m.type !== "cache")
    throw new ReasonError(`invalid cache sharing set for ${m.type} mount`);
  return m;
}

/** Parses one `--device` value: `name[,required[=bool]]` or `name=…,required=…`. */
export function parseDevice(spec: string): Device {
  let fields: string[];
  try {
    fields = csvFields(spec);
  } catch (e) {
    throw new ReasonError(`failed to parse csv devices: ${(e as Error).message}`);
  }
  const d: Device = { name: "", required: false };
  for (const field of fields) {
    const eq = field.indexOf("=");
    const key = (eq < 0 ? field : field.slice(0, eq)).toLowerCase();
    const value = eq < 0 ? "" : field.slice(eq + 1);
    if (eq < 0) {
      if (key === "required") {
        d.required = true;
        continue;
      }
      if (d.name === "") {
        d.name = field;
        continue;
      }
      throw new ReasonError(`invalid field '${field}' must be a key=value pair`);
    }
    switch (key) {
      case "name":
        if (d.name !== "") throw new ReasonError(`device name already set to ${d.name}`);
        d.name = value;
        break;
      case "required":
        d.required = boolValue(key, value);
        break;
      default:
        if (d.name === "") {
          d.name = field;
          continue;
        }
        throw new ReasonError(
          withSuggestion(`unexpected key '${key}' in '${field}'`, key, ["name", "required"], true),
        );
    }
  }
  return d;
}

/** Checks a `--network` value (`invalid network mode "x"`). */
export function parseNetwork(value: string): NetworkMode {
  if (value === "default" || value === "none" || value === "host") return value;
  throw new ReasonError(`invalid network mode ${goQuote(value)}`);
}

/** Checks a `--security` value (`security "x" is not valid`). */
export function parseSecurity(value: string): SecurityMode {
  if (value === "sandbox" || value === "insecure") return value;
  throw new ReasonError(`security ${goQuote(value)} is not valid`);
}
