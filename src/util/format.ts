/**
 * Docker's human-readable numbers (docker/go-units), reproduced exactly because scripts
 * and eyes compare them: SI sizes with 3 significant digits ("141MB", "1.01GB") and
 * relative durations ("2 weeks").
 */

/** Go's strconv 'g' formatting with a precision: shortest form, trailing zeros dropped. */
export function goFormatG(x: number, prec: number): string {
  if (x === 0) return "0";
  if (!Number.isFinite(x)) return x > 0 ? "+Inf" : x < 0 ? "-Inf" : "NaN";
  const e = x.toExponential(prec - 1); // e.g. "1.00e+3"
  const [mant, expStr] = e.split("e") as [string, string];
  const exp = Number(expStr);
  const strip = (s: string) => (s.includes(".") ? s.replace(/0+$/, "").replace(/\.$/, "") : s);
  if (exp < -4 || exp >= prec) {
    const sign = exp < 0 ? "-" : "+";
    const abs = Math.abs(exp);
    return `${strip(mant)}e${sign}${abs < 10 ? "0" : ""}${abs}`;
  }
  return strip(x.toFixed(Math.max(prec - 1 - exp, 0)));
}

const DECIMAL_UNITS = ["B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB"];
const BINARY_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];

function sizeAndUnit(size: number, base: number, units: string[]): [number, string] {
  let i = 0;
  while (size >= base && i < units.length - 1) {
    size /= base;
    i++;
  }
  return [size, units[i]!];
}

/** go-units HumanSizeWithPrecision: `docker images` uses precision 3. */
export function humanSize(bytes: number, precision = 3): string {
  const [v, u] = sizeAndUnit(bytes, 1000, DECIMAL_UNITS);
  return `${goFormatG(v, precision)}${u}`;
}

/** go-units HumanSize (precision 4), used by `docker system df` and prune totals. */
export function humanSize4(bytes: number): string {
  return humanSize(bytes, 4);
}

/** go-units BytesSize: binary units, precision 4 ("1.5MiB"). */
export function bytesSize(bytes: number): string {
  const [v, u] = sizeAndUnit(bytes, 1024, BINARY_UNITS);
  return `${goFormatG(v, 4)}${u}`;
}

/** go-units HumanDuration of a span in milliseconds. */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < 1) return "Less than a second";
  if (seconds === 1) return "1 second";
  if (seconds < 60) return `${seconds} seconds`;
  const minutes = Math.trunc(ms / 60_000);
  if (minutes === 1) return "About a minute";
  if (minutes < 60) return `${minutes} minutes`;
  const hours = Math.trunc(ms / 3_600_000 + 0.5);
  if (hours === 1) return "About an hour";
  if (hours < 48) return `${hours} hours`;
  if (hours < 24 * 7 * 2) return `${Math.trunc(hours / 24)} days`;
  if (hours < 24 * 30 * 2) return `${Math.trunc(hours / 24 / 7)} weeks`;
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24 / 30)} months`;
  return `${Math.trunc(Math.trunc(ms / 3_600_000) / 24 / 365)} years`;
}

/** "2 weeks ago", as Docker's CreatedSince. */
export function timeAgo(when: Date | string, now: Date = new Date()): string {
  const t = typeof when === "string" ? Date.parse(when) : when.getTime();
  if (!Number.isFinite(t) || t <= 0) return "N/A";
  return `${humanDuration(now.getTime() - t)} ago`;
}

/** Go's time.Time String() form that Docker prints for CreatedAt: "2024-01-01 00:00:00 +0000 UTC". */
export function goTimeString(when: string | Date): string {
  const d = typeof when === "string" ? new Date(when) : when;
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getUTCFullYear()}-${p(d.getUTCMonth() + 1)}-${p(d.getUTCDate())} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000 UTC`;
}
