// Bundle js/src/index.ts into ONE ESM file that anywidget loads as `_esm`:
//   patternviz_widget/static/widget.js  (+ widget.css when js/src/styles.css exists)
// Everything the page needs is bundled (three.js included): notebooks may have no internet,
// so nothing is ever imported from a CDN at run time.
//
//   node build.mjs            one production build (minified, with a linked source map)
//   node build.mjs --watch    rebuild on change (npm run dev)
//   node build.mjs --quiet    print warnings and errors only
import * as esbuild from "esbuild";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outdir = join(here, "..", "patternviz_widget", "static");
const entry = join(here, "src", "index.ts");
const css = join(here, "src", "styles.css");
const watch = process.argv.includes("--watch");
const quiet = process.argv.includes("--quiet");

if (!existsSync(entry)) {
  console.error(`build.mjs: entry ${entry} is missing`);
  process.exit(1);
}
mkdirSync(outdir, { recursive: true });
// A stale widget.css from an earlier build must not outlive the source it came from.
if (!existsSync(css)) rmSync(join(outdir, "widget.css"), { force: true });

const entryPoints = [{ in: entry, out: "widget" }];
if (existsSync(css)) entryPoints.push({ in: css, out: "widget" });

const options = {
  entryPoints,
  outdir,
  bundle: true,
  format: "esm",
  platform: "browser",
  target: ["es2020"],
  minify: !watch,
  sourcemap: watch ? "inline" : "linked",
  legalComments: "linked",
  logLevel: quiet ? "warning" : "info",
  // Every import is resolved and bundled; there is deliberately no `external` list.
};

if (watch) {
  const ctx = await esbuild.context(options);
  await ctx.watch();
  console.log(`watching ${join(here, "src")} -> ${outdir}`);
} else {
  await esbuild.build(options);
}
