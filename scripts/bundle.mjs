// Bundle the CLI into dist/bin/ (ES modules, split so lazily imported parts stay lazy).
// One file tree instead of hundreds of small modules cuts the CLI's start-up time; npm
// packages are bundled too, except those loaded with require() on first use (zod).
import { rmSync } from "node:fs";
import { build } from "esbuild";

// Chunk names carry content hashes: clear the old ones so dist/bin holds one build only.
rmSync("dist/bin", { recursive: true, force: true });

await build({
  // The container supervisor is a second entry: it runs as its own process (see src/runtime/supervisor.ts).
  entryPoints: [
    { in: "src/main.ts", out: "main" },
    { in: "src/runtime/supervisor.ts", out: "supervisor" },
  ],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  splitting: true,
  outdir: "dist/bin",
  sourcemap: true,
  logLevel: "warning",
  banner: { js: "import { createRequire as __strataRequire } from 'node:module'; const require = __strataRequire(import.meta.url);" },
});
