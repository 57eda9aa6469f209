// Bundle the CLI into dist/bin/ (ES modules, split so lazily imported parts stay lazy).
// One file tree instead of hundreds of small modules cuts the CLI's start-up time; npm
// packages are bundled too, except those loaded with require() on first use (zod).
import { build } from "esbuild";

await build({
  entryPoints: ["src/main.ts"],
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
