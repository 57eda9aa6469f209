/**
 * OCI runtime-spec config.json generation: the process, namespaces and mounts a RUN step
 * or a container gets, the same set Docker gives (proc, dev tmpfs, devpts, shm, mqueue,
 * read-only sysfs, resolv.conf and hosts bind mounts), with Docker's default capabilities.
 */
export interface ProcessSpec {
  args: string[];
  env: string[];
  cwd: string;
  uid: number;
  gid: number;
  additionalGids?: number[];
  terminal?: boolean;
}

export interface MountSpec {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export interface SpecOptions {
  process: ProcessSpec;
  rootPath: string;
  rootReadonly?: boolean;
  hostname?: string;
  /** "host" shares the host's network namespace; "none" and "default" get a new empty one. */
  network?: "host" | "none" | "default";
  /** Extra bind mounts (secrets, cache mounts, volumes). */
  mounts?: MountSpec[];
  /** Files to bind read-only at /etc/resolv.conf and /etc/hosts. */
  resolvConf?: string;
  hosts?: string;
}

/** Docker's default capability set (moby oci/caps/defaults.go). */
export const DEFAULT_CAPS = [
  "CAP_CHOWN",
  "CAP_DAC_OVERRIDE",
  "CAP_FSETID",
  "CAP_FOWNER",
  "CAP_MKNOD",
  "CAP_NET_RAW",
  "CAP_SETGID",
  "CAP_SETUID",
  "CAP_SETFCAP",
  "CAP_SETPCAP",
  "CAP_NET_BIND_SERVICE",
  "CAP_SYS_CHROOT",
  "CAP_KILL",
  "CAP_AUDIT_WRITE",
];

const MASKED = [
  "/proc/asound",
  "/proc/acpi",
  "/proc/kcore",
  "/proc/keys",
  "/proc/latency_stats",
  "/proc/timer_list",
  "/proc/timer_stats",
  "/proc/sched_debug",
  "/proc/scsi",
  "/sys/firmware",
];
const READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

export function generateSpec(o: SpecOptions): Record<string, unknown> {
  const caps = DEFAULT_CAPS;
  const namespaces = [{ type: "pid" }, { type: "ipc" }, { type: "uts" }, { type: "mount" }];
  if (o.network !== "host") namespaces.push({ type: "network" });
  const mounts: MountSpec[] = [
    { destination: "/proc", type: "proc", source: "proc", options: ["nosuid", "noexec", "nodev"] },
    {
      destination: "/dev",
      type: "tmpfs",
      source: "tmpfs",
      options: ["nosuid", "strictatime", "mode=755", "size=65536k"],
    },
    {
      destination: "/dev/pts",
      type: "devpts",
      source: "devpts",
      options: ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"],
    },
    {
      destination: "/dev/shm",
      type: "tmpfs",
      source: "shm",
      options: ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
    },
    { destination: "/dev/mqueue", type: "mqueue", source: "mqueue", options: ["nosuid", "noexec", "nodev"] },
    { destination: "/sys", type: "sysfs", source: "sysfs", options: ["nosuid", "noexec", "nodev", "ro"] },
  ];
  if (o.resolvConf)
    mounts.push({
      destination: "/etc/resolv.conf",
      type: "bind",
      source: o.resolvConf,
      options: ["rbind", "ro"],
    });
  if (o.hosts)
    mounts.push({ destination: "/etc/hosts", type: "bind", source: o.hosts, options: ["rbind", "ro"] });
  mounts.push(...(o.mounts ?? []));
  return {
    ociVersion: "1.0.2",
    process: {
      terminal: o.process.terminal ?? false,
      user: { uid: o.process.uid, gid: o.process.gid, additionalGids: o.process.additionalGids ?? [] },
      args: o.process.args,
      env: o.process.env,
      cwd: o.process.cwd || "/",
      capabilities: { bounding: caps, effective: caps, permitted: caps },
      noNewPrivileges: false,
    },
    root: { path: o.rootPath, readonly: o.rootReadonly ?? false },
    hostname: o.hostname ?? "strata",
    mounts,
    linux: {
      namespaces,
      maskedPaths: MASKED,
      readonlyPaths: READONLY,
      resources: { devices: [{ allow: false, access: "rwm" }] },
    },
  };
}
