/**
 * Runs `strata registry ...` from source (`npx tsx test/helpers/registry-cli.ts registry serve ...`)
 * until the lead wires registerRegistryCommands into the main program. Same exit code
 * contract as the real CLI: `Error: <message>` on stderr and exit 1.
 */
import { Command } from "commander";
import { registerRegistryCommands } from "../../src/cli/commands/registry.js";

const program = new Command("strata").exitOverride();
registerRegistryCommands(program);
program.parseAsync(process.argv).then(
  () => process.exit(0),
  (e: unknown) => {
    const code = (e as { code?: string }).code;
    if (code === "commander.helpDisplayed" || code === "commander.version") process.exit(0);
    if (typeof code === "string" && code.startsWith("commander.")) process.exit(125);
    process.stderr.write(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
