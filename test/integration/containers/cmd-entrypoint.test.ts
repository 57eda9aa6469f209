import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { strata, tempDir } from "../../helpers/cli.js";
import { requires } from "../../helpers/tools.js";
import { buildImage, mountsUnder, ok, storeWithBase } from "./helpers.js";

const need = requires({ root: true, tools: ["runc"] });

/**
 * Docker's table "Understand how CMD and ENTRYPOINT interact" (Dockerfile reference), plus
 * the run-time overrides: arguments after the image replace CMD; --entrypoint replaces
 * ENTRYPOINT and drops the image's CMD; --entrypoint "" only clears ENTRYPOINT.
 * The programs print their argv so the test sees what ran.
 */
const ENTRY_EXEC = 'ENTRYPOINT ["/bin/echo", "exec_entry", "p1_entry"]';
const ENTRY_SHELL = "ENTRYPOINT echo shell_entry p1_entry";
const CMD_EXEC = 'CMD ["/bin/echo", "exec_cmd", "p1_cmd"]';
const CMD_PARAMS = 'CMD ["p1_cmd", "p2_cmd"]';
const CMD_SHELL = "CMD echo shell_cmd p1_cmd";

interface Case {
  name: string;
  lines: string[];
  args?: string[];
  /** Expected Path + Args of the container, and its output. */
  argv?: string[];
  out?: string;
  error?: RegExp;
  code?: number;
}

const CASES: Case[] = [
  { name: "no ENTRYPOINT, no CMD", lines: [], error: /No command specified/, code: 125 },
  {
    name: "ENTRYPOINT exec, no CMD",
    lines: [ENTRY_EXEC],
    argv: ["/bin/echo", "exec_entry", "p1_entry"],
    out: "exec_entry p1_entry\n",
  },
  {
    name: "ENTRYPOINT shell, no CMD",
    lines: [ENTRY_SHELL],
    argv: ["/bin/sh", "-c", "echo shell_entry p1_entry"],
    out: "shell_entry p1_entry\n",
  },
  {
    name: "CMD exec, no ENTRYPOINT",
    lines: [CMD_EXEC],
    argv: ["/bin/echo", "exec_cmd", "p1_cmd"],
    out: "exec_cmd p1_cmd\n",
  },
  {
    name: "CMD exec + ENTRYPOINT exec",
    lines: [ENTRY_EXEC, CMD_EXEC],
    argv: ["/bin/echo", "exec_entry", "p1_entry", "/bin/echo", "exec_cmd", "p1_cmd"],
    out: "exec_entry p1_entry /bin/echo exec_cmd p1_cmd\n",
  },
  {
    name: "CMD exec + ENTRYPOINT shell (CMD becomes $0 $1… of sh -c and is ignored)",
    lines: [ENTRY_SHELL, CMD_EXEC],
    argv: ["/bin/sh", "-c", "echo shell_entry p1_entry", "/bin/echo", "exec_cmd", "p1_cmd"],
    out: "shell_entry p1_entry\n",
  },
  {
    name: "CMD params, no ENTRYPOINT (p1_cmd is the program)",
    lines: [CMD_PARAMS],
    argv: ["p1_cmd", "p2_cmd"],
    error: /exec: "p1_cmd": executable file not found in \$PATH/,
    code: 127,
  },
  {
    name: "CMD params + ENTRYPOINT exec",
    lines: [ENTRY_EXEC, CMD_PARAMS],
    argv: ["/bin/echo", "exec_entry", "p1_entry", "p1_cmd", "p2_cmd"],
    out: "exec_entry p1_entry p1_cmd p2_cmd\n",
  },
  {
    name: "CMD params + ENTRYPOINT shell",
    lines: [ENTRY_SHELL, CMD_PARAMS],
    argv: ["/bin/sh", "-c", "echo shell_entry p1_entry", "p1_cmd", "p2_cmd"],
    out: "shell_entry p1_entry\n",
  },
  {
    name: "CMD shell, no ENTRYPOINT",
    lines: [CMD_SHELL],
    argv: ["/bin/sh", "-c", "echo shell_cmd p1_cmd"],
    out: "shell_cmd p1_cmd\n",
  },
  {
    name: "CMD shell + ENTRYPOINT exec",
    lines: [ENTRY_EXEC, CMD_SHELL],
    argv: ["/bin/echo", "exec_entry", "p1_entry", "/bin/sh", "-c", "echo shell_cmd p1_cmd"],
    out: "exec_entry p1_entry /bin/sh -c echo shell_cmd p1_cmd\n",
  },
  {
    name: "CMD shell + ENTRYPOINT shell",
    lines: [ENTRY_SHELL, CMD_SHELL],
    argv: ["/bin/sh", "-c", "echo shell_entry p1_entry", "/bin/sh", "-c", "echo shell_cmd p1_cmd"],
    out: "shell_entry p1_entry\n",
  },
  // Run-time overrides.
  {
    name: "run args replace CMD (no ENTRYPOINT)",
    lines: [CMD_EXEC],
    args: ["echo", "from", "args"],
    argv: ["echo", "from", "args"],
    out: "from args\n",
  },
  {
    name: "run args replace CMD and follow an exec ENTRYPOINT",
    lines: [ENTRY_EXEC, CMD_EXEC],
    args: ["a1", "a2"],
    argv: ["/bin/echo", "exec_entry", "p1_entry", "a1", "a2"],
    out: "exec_entry p1_entry a1 a2\n",
  },
  {
    name: "--entrypoint replaces ENTRYPOINT and drops the image's CMD",
    lines: [ENTRY_EXEC, CMD_EXEC],
    args: ["--entrypoint", "/bin/echo"],
    argv: ["/bin/echo"],
    out: "\n",
  },
  {
    name: "--entrypoint with run args",
    lines: [ENTRY_EXEC, CMD_EXEC],
    args: ["--entrypoint", "/bin/echo", "x", "y"],
    argv: ["/bin/echo", "x", "y"],
    out: "x y\n",
  },
  {
    name: '--entrypoint "" clears ENTRYPOINT and keeps the image\'s CMD',
    lines: [ENTRY_EXEC, CMD_EXEC],
    args: ["--entrypoint", ""],
    argv: ["/bin/echo", "exec_cmd", "p1_cmd"],
    out: "exec_cmd p1_cmd\n",
  },
  {
    name: '--entrypoint "" with run args',
    lines: [ENTRY_EXEC, CMD_EXEC],
    args: ["--entrypoint", "", "echo", "only", "args"],
    argv: ["echo", "only", "args"],
    out: "only args\n",
  },
  {
    name: "--entrypoint on an image with neither",
    lines: [],
    args: ["--entrypoint", "/bin/echo", "z"],
    argv: ["/bin/echo", "z"],
    out: "z\n",
  },
  {
    name: "a command that is not executable exits 126",
    lines: [],
    args: ["/etc/passwd"],
    argv: ["/etc/passwd"],
    error: /permission denied/,
    code: 126,
  },
];

describe.skipIf(!need.ok)("CMD and ENTRYPOINT combine exactly as Docker's", () => {
  const t = tempDir();
  const root = path.join(t.dir, "store");

  beforeAll(async () => {
    await storeWithBase(root);
    // `CMD []` clears the base's CMD (sh): every case starts from neither.
    const seen = new Map<string, string>();
    for (const c of CASES) {
      const key = c.lines.join("\n");
      if (seen.has(key)) continue;
      const tag = `case${seen.size}:1`;
      seen.set(key, tag);
      await buildImage(root, tag, `FROM bb:1\nCMD []\n${key}\n`);
    }
    (globalThis as { tags?: Map<string, string> }).tags = seen;
  }, 240_000);

  afterAll(() => {
    expect(mountsUnder(root)).toEqual([]);
    t.cleanup();
  });

  for (const c of CASES)
    it(c.name, async () => {
      const tag = (globalThis as { tags?: Map<string, string> }).tags!.get(c.lines.join("\n"))!;
      const flags = c.args?.[0] === "--entrypoint" ? c.args.slice(0, 2) : [];
      const rest = c.args?.[0] === "--entrypoint" ? c.args.slice(2) : (c.args ?? []);
      const name = `c${Math.random().toString(36).slice(2, 10)}`;
      const r = await strata(root, ["run", "--name", name, "--network", "none", ...flags, tag, ...rest]);
      if (c.error) {
        expect(r.stderr).toMatch(c.error);
        expect(r.code).toBe(c.code);
      } else {
        expect(r.stderr).toBe("");
        expect(r.stdout).toBe(c.out);
        expect(r.code).toBe(0);
      }
      if (c.argv) {
        const f = ok(
          await strata(root, ["inspect", "--format", "{{json .Path}} {{json .Args}}", name]),
          "inspect",
        );
        expect(f.trim()).toBe(`${JSON.stringify(c.argv[0])} ${JSON.stringify(c.argv.slice(1))}`);
      } else {
        expect((await strata(root, ["inspect", name])).code).toBe(1);
      }
      await strata(root, ["rm", "-f", name]);
    });
});
