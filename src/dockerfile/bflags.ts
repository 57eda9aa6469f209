/**
 * Instruction flags (`--from=…`, `--link`, `--mount=…` repeated), BuildKit `instructions/bflag.go`:
 * each instruction declares the flags it accepts, then the words the parser collected are checked
 * against them. Flags are validated here, not in the parser, so the parser accepts any `--word`.
 */

import { ReasonError } from "./errors.js";
import { withSuggestion } from "./text.js";

type FlagType = "bool" | "string" | "strings";

/** One declared flag and, after parse(), its value. */
export interface Flag {
  readonly name: string;
  readonly type: FlagType;
  /** For bool flags "true"/"false"; for string flags the value (or the default). */
  value: string;
  /** For repeatable flags, every value in order. */
  values: string[];
}

/** The flags one instruction accepts, checked against the words the parser collected. */
export class BFlags {
  private readonly flags = new Map<string, Flag>();
  private readonly used = new Set<string>();

  constructor(private readonly args: readonly string[]) {}

  addBool(name: string, def = false): Flag {
    return this.add(name, "bool", def ? "true" : "false");
  }

  addString(name: string, def = ""): Flag {
    return this.add(name, "string", def);
  }

  addStrings(name: string): Flag {
    return this.add(name, "strings", "");
  }

  private add(name: string, type: FlagType, value: string): Flag {
    const f: Flag = { name, type, value, values: [] };
    this.flags.set(name, f);
    return f;
  }

  isUsed(name: string): boolean {
    return this.used.has(name);
  }

  /** Names of the flags given, in declaration order. */
  usedNames(): string[] {
    return [...this.flags.keys()].filter((k) => this.used.has(k));
  }

  /** Checks the words against the declared flags and fills in their values. */
  parse(): void {
    for (const a of this.args) {
      // `--` ends the flags (POSIX utility syntax guidelines); the parser usually drops it.
      if (a === "--") return;
      if (!a.startsWith("--")) throw new ReasonError(`arg should start with -- : ${a}`);
      const eq = a.indexOf("=");
      const flagName = eq < 0 ? a : a.slice(0, eq);
      const value = eq < 0 ? "" : a.slice(eq + 1);
      const hasValue = eq >= 0;
      const name = flagName.slice(2);
      const flag = this.flags.get(name);
      if (!flag) {
        throw new ReasonError(
          withSuggestion(`Unknown flag: ${name}`, name, [...this.flags.keys()].sort(), true),
        );
      }
      if (this.used.has(name) && flag.type !== "strings") {
        throw new ReasonError(`duplicate flag specified: ${flagName}`);
      }
      this.used.add(name);
      switch (flag.type) {
        case "bool":
          if (hasValue && value === "") throw new ReasonError(`missing a value on flag: ${flagName}`);
          switch (value.toLowerCase()) {
            case "true":
            case "":
              flag.value = "true";
              break;
            case "false":
              flag.value = "false";
              break;
            default:
              throw new ReasonError(`expecting boolean value for flag ${flagName}, not: ${value}`);
          }
          break;
        case "string":
          if (!hasValue) throw new ReasonError(`missing a value on flag: ${flagName}`);
          flag.value = value;
          break;
        case "strings":
          if (!hasValue) throw new ReasonError(`missing a value on flag: ${flagName}`);
          flag.values.push(value);
          break;
      }
    }
  }
}
