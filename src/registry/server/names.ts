/**
 * Repository names and tags, by the distribution spec's grammar. Kept local so the server
 * does not depend on reference/'s Docker normalisation (a registry sees path names, never
 * `docker.io/library/...`).
 */

const COMPONENT = "[a-z0-9]+(?:(?:\\.|_|__|-+)[a-z0-9]+)*";
/** `<name>` of the distribution spec. */
export const NAME_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
/** `<reference>` when it is a tag: at most 128 characters. */
export const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/**
 * Clients cap `host[:port]/name` at 255 characters; CNCF distribution caps the name itself
 * at 255. We do the same, so any name we accept can be pulled by Docker.
 */
export const MAX_NAME_LENGTH = 255;

export function isValidName(name: string): boolean {
  return name.length <= MAX_NAME_LENGTH && NAME_RE.test(name);
}

export function isValidTag(tag: string): boolean {
  return TAG_RE.test(tag);
}

/**
 * A repository pattern from the access rules: `*` matches within one path component,
 * `**` matches across components, anything else is literal. `team/**` matches `team/a`
 * and `team/a/b`; `*` alone matches only single-component names.
 */
export function compilePattern(pattern: string): RegExp {
  let re = "";
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === "*") {
      if (pattern[i + 1] === "*") {
        re += ".*";
        i++;
      } else re += "[^/]*";
    } else re += c.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}
