import type { AccessRule, Action } from "./config.js";
import { compilePattern } from "./names.js";

export const ALL_ACTIONS: readonly Action[] = ["pull", "push", "delete"];

/**
 * Who may do what, from the config's access rules.
 *
 * - No authentication configured: everyone may do everything (serve refuses that on a
 *   non-loopback address unless `--insecure-open`).
 * - Anonymous callers may pull repositories that match `anonymous.pull` patterns.
 * - Authenticated users: with no `access` rules, every action everywhere; with rules, the
 *   union of the rules that name the user, one of the user's groups, or nobody (a rule with
 *   neither `users` nor `groups` applies to every authenticated user).
 * - The catalog (`registry:catalog:*`) is open to every authenticated user and, when some
 *   anonymous pull pattern exists, to anonymous callers; its entries are filtered by pull.
 */
export class AccessPolicy {
  private readonly rules: {
    patterns: RegExp[];
    users: Set<string>;
    groups: Set<string>;
    any: boolean;
    actions: Action[];
  }[];
  private readonly anonymous: RegExp[];
  private readonly groupsOf = new Map<string, string[]>();

  constructor(
    private readonly opts: {
      authEnabled: boolean;
      access: AccessRule[] | undefined;
      groups: Record<string, string[]>;
      anonymousPull: string[];
    },
  ) {
    this.rules = (opts.access ?? []).map((r) => ({
      patterns: r.repositories.map(compilePattern),
      users: new Set(r.users ?? []),
      groups: new Set(r.groups ?? []),
      any: !r.users?.length && !r.groups?.length,
      actions: r.actions,
    }));
    this.anonymous = opts.anonymousPull.map(compilePattern);
    for (const [g, members] of Object.entries(opts.groups)) {
      for (const m of members) this.groupsOf.set(m, [...(this.groupsOf.get(m) ?? []), g]);
    }
  }

  /** The actions `user` (undefined = anonymous) may do on repository `name`. */
  actions(user: string | undefined, name: string): Action[] {
    if (!this.opts.authEnabled) return [...ALL_ACTIONS];
    if (user === undefined) return this.anonymous.some((p) => p.test(name)) ? ["pull"] : [];
    if (this.opts.access === undefined) return [...ALL_ACTIONS];
    const groups = this.groupsOf.get(user) ?? [];
    const out = new Set<Action>();
    for (const r of this.rules) {
      if (!(r.any || r.users.has(user) || groups.some((g) => r.groups.has(g)))) continue;
      if (!r.patterns.some((p) => p.test(name))) continue;
      for (const a of r.actions) out.add(a);
    }
    return ALL_ACTIONS.filter((a) => out.has(a));
  }

  allowed(user: string | undefined, name: string, action: Action): boolean {
    return this.actions(user, name).includes(action);
  }

  catalogAllowed(user: string | undefined): boolean {
    if (!this.opts.authEnabled || user !== undefined) return true;
    return this.anonymous.length > 0;
  }
}
