#!/usr/bin/env node
import { run } from "./cli/index.js";

run(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (e) => {
    process.stderr.write(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
