// Bundle the CLI into dist/bin/:
//   main.js        the entry point (ESM): starts what can start early (a build's context
//                  listing, a run's supervisor), then loads the CLI through V8's code cache
//   cli-<hash>.cjs the CLI, engine and everything they import, as one CommonJS file: a
//                  vm.Script can use a code cache, an ES module cannot on Node 20 (see
//                  src/main.ts). Lazily imported parts stay lazy: esbuild wraps each module
//                  and runs it on first import.
//   vendor/*.cjs   large libraries only a few commands use (undici for ADD's URLs, yaml for
//                  the registry's config), required on first use
//   supervisor.js  the container supervisor, its own process (src/runtime/supervisor.ts)
// zod is required from node_modules on first use (src/oci/schema.ts).
import { createHash } from "node:crypto";
import { readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { build } from "esbuild";

// Names carry content hashes: clear the old ones (and their code caches) so dist/bin holds one build only.
rmSync("dist/bin", { recursive: true, force: true });

const common = { bundle: true, platform: "node", target: "node20", logLevel: "warning", sourcemap: true };
const VENDOR = ["undici", "yaml"];

// The vendored libraries, each a CommonJS file of its own.
await build({
  ...common,
  format: "cjs",
  entryPoints: Object.fromEntries(VENDOR.map((v) => [v, v])),
  outdir: "dist/bin/vendor",
  outExtension: { ".js": ".cjs" },
});

// The CLI. `import.meta.url` has no CommonJS meaning: it becomes the bundle's own file URL.
await build({
  ...common,
  format: "cjs",
  entryPoints: { cli: "src/cli/index.ts" },
  outfile: "dist/bin/cli.cjs",
  external: ["zod"],
  // Every import() a require(): a vm.Script has no module loader of its own.
  supported: { "dynamic-import": false },
  define: { "import.meta.url": "__strataFileUrl" },
  banner: {
    js: `"use strict";\nconst __strataFileUrl = require("node:url").pathToFileURL(__filename).href;`,
  },
  plugins: [
    {
      name: "vendor",
      setup(b) {
        const re = new RegExp(`^(${VENDOR.join("|")})$`);
        b.onResolve({ filter: re }, (a) => ({ path: `./vendor/${a.path}.cjs`, external: true }));
      },
    },
  ],
});
const hash = createHash("sha256").update(readFileSync("dist/bin/cli.cjs")).digest("hex").slice(0, 12);
const cli = `cli-${hash}.cjs`;
const bundled = readFileSync("dist/bin/cli.cjs", "utf8").replace(
  /\/\/# sourceMappingURL=cli\.cjs\.map\s*$/,
  `//# sourceMappingURL=${cli}.map`,
);
rmSync("dist/bin/cli.cjs");
renameSync("dist/bin/cli.cjs.map", `dist/bin/${cli}.map`);
writeFileSync(`dist/bin/${cli}`, bundled);

// The entry point and the supervisor: ES modules, each self-contained.
await build({
  ...common,
  format: "esm",
  entryPoints: { main: "src/main.ts", supervisor: "src/runtime/supervisor.ts" },
  outdir: "dist/bin",
  define: { __STRATA_CLI__: JSON.stringify(cli) },
  plugins: [
    {
      name: "cli-is-loaded-at-run-time",
      setup(b) {
        // main.ts imports the CLI from sources only when run unbundled (no __STRATA_CLI__).
        b.onResolve({ filter: /^\.\/cli\/index\.js$/ }, (a) => ({ path: a.path, external: true }));
      },
    },
  ],
  banner: {
    js: "import { createRequire as __strataRequire } from 'node:module'; const require = __strataRequire(import.meta.url);",
  },
});
