/**
 * The reference grammar of distribution/reference (regexp.go), built from the same
 * named pieces so each production can be read against the upstream grammar:
 *
 *   reference        := name [ ":" tag ] [ "@" digest ]
 *   name             := [ domain "/" ] remote-name
 *   domain           := host [ ":" port-number ]
 *   host             := domain-name | "[" ipv6 "]"
 *   domain-name      := domain-component [ "." domain-component ]*
 *   remote-name      := path-component [ "/" path-component ]*
 *   path-component   := alpha-numeric [ separator alpha-numeric ]*
 *   tag              := /[\w][\w.-]{0,127}/
 *   digest           := algorithm ":" hex  (at least 32 hex digits)
 *   identifier       := /[a-f0-9]{64}/
 *
 * JavaScript's backtracking engine returns the same submatches as Go's leftmost-first
 * RE2 for these expressions. No flag is set: `\w` stays ASCII, as in Go, and the
 * expressions carry no `g` state, so the shared RegExp objects are safe to reuse.
 */

const optional = (...parts: string[]): string => `(?:${parts.join("")})?`;
const anyTimes = (...parts: string[]): string => `(?:${parts.join("")})*`;
const capture = (...parts: string[]): string => `(${parts.join("")})`;
const anchored = (...parts: string[]): string => `^${parts.join("")}$`;

/** Lower-case letters and digits: the atoms of a path component. */
const alphanumeric = "[a-z0-9]+";
/** One period, one or two underscores, or any number of dashes. */
const separator = "(?:[._]|__|[-]+)";
/** A DNS label, upper case allowed; no leading or trailing dash. */
const domainNameComponent = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
/** `:port`, digits only; the range is not checked. */
const optionalPort = "(?::[0-9]+)?";
/** Compressed or full IPv6 in brackets; no zone identifier, no embedded IPv4. */
const ipv6address = "\\[(?:[a-fA-F0-9:]+)\\]";
const domainName = domainNameComponent + anyTimes("\\.", domainNameComponent);
const host = `(?:${domainName}|${ipv6address})`;
const domainAndPort = host + optionalPort;
const tag = "[\\w][\\w.-]{0,127}";
/** The reference grammar's digest: stricter hex than go-digest, looser algorithm case. */
const digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][0-9a-fA-F]{32,}";
const identifier = "[a-f0-9]{64}";
const pathComponent = alphanumeric + anyTimes(separator, alphanumeric);
const remoteName = pathComponent + anyTimes("/", pathComponent);
const name = optional(domainAndPort, "/") + remoteName;

/**
 * The grammar's regular expressions. The RegExp members are anchored (they match a
 * whole string); `source` holds the unanchored, capture-free productions for callers
 * that compose their own expressions (for example a `host:port` check).
 */
export const grammar = {
  /** `host[:port]`: a domain name, IPv4 address or bracketed IPv6 address (DomainRegexp). */
  domain: new RegExp(anchored(domainAndPort)),
  /** A name; groups: 1 domain (undefined when absent), 2 path (anchoredNameRegexp). */
  name: new RegExp(anchored(optional(capture(domainAndPort), "/"), capture(remoteName))),
  /** The path alone, without a domain (remote-name). */
  path: new RegExp(anchored(remoteName)),
  /** A full reference; groups: 1 name, 2 tag, 3 digest (ReferenceRegexp). */
  reference: new RegExp(anchored(capture(name), optional(":", capture(tag)), optional("@", capture(digest)))),
  /** A tag (TagRegexp). */
  tag: new RegExp(anchored(tag)),
  /** A digest as the reference grammar accepts it (DigestRegexp). */
  digest: new RegExp(anchored(digest)),
  /** A 64-character lower-case hex image ID (IdentifierRegexp). */
  identifier: new RegExp(anchored(identifier)),
  /** Unanchored productions without capture groups. */
  source: {
    alphanumeric,
    separator,
    pathComponent,
    remoteName,
    domainNameComponent,
    domainName,
    ipv6address,
    host,
    domainAndPort,
    name,
    tag,
    digest,
    identifier,
  },
} as const;
