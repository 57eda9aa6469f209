/** One `WWW-Authenticate` challenge: the scheme in lower case and its parameters. */
export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/**
 * Parse `WWW-Authenticate` values (RFC 7235): `Bearer realm="…",service="…",scope="a b"`,
 * `Basic realm="x"`. Several challenges may share one header or come in several headers.
 * Parameter names are lower-cased; quoted values may contain commas and escaped quotes.
 */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  if (header === undefined) return [];
  const values = Array.isArray(header) ? header : [header];
  const out: Challenge[] = [];
  for (const value of values) {
    let i = 0;
    const s = value;
    const skipWs = () => {
      while (i < s.length && (s[i] === " " || s[i] === "\t")) i++;
    };
    const token = () => {
      const start = i;
      while (i < s.length && /[!#$%&'*+\-.^_`|~0-9A-Za-z]/.test(s[i]!)) i++;
      return s.slice(start, i);
    };
    let current: Challenge | undefined;
    while (i < s.length) {
      skipWs();
      if (s[i] === ",") {
        i++;
        continue;
      }
      const word = token();
      if (!word) {
        i++;
        continue;
      }
      skipWs();
      if (s[i] === "=") {
        // a parameter of the current challenge
        i++;
        skipWs();
        let v = "";
        if (s[i] === '"') {
          i++;
          while (i < s.length && s[i] !== '"') {
            if (s[i] === "\\" && i + 1 < s.length) i++;
            v += s[i];
            i++;
          }
          i++;
        } else {
          const start = i;
          while (i < s.length && s[i] !== "," && s[i] !== " ") i++;
          v = s.slice(start, i);
        }
        if (current) current.params[word.toLowerCase()] = v;
      } else {
        current = { scheme: word.toLowerCase(), params: {} };
        out.push(current);
      }
    }
  }
  return out;
}
