// The owner's page as one HTML file: app.js with uPlot bundled and minified by esbuild,
// the CSS inlined. tools/hanctl/page_assets.py runs this, then gzips the result for the
// dongle's flash. Usage: node build.mjs OUT.html
import { readFileSync, writeFileSync } from "node:fs";
import { build } from "esbuild";

const out = process.argv[2];
const js = await build({
  entryPoints: ["src/app.js"],
  bundle: true,
  minify: true,
  write: false,
  format: "iife",
  target: "es2019",
  legalComments: "none",
});
const css = await build({
  entryPoints: ["src/style.css"],
  bundle: true,
  minify: true,
  write: false,
  loader: { ".css": "css" },
});
const html = readFileSync("src/index.html", "utf8")
  .replace("/*STYLE*/", () => css.outputFiles[0].text)
  .replace("/*SCRIPT*/", () => js.outputFiles[0].text.replace(/<\/script/gi, "<\\/script"));
writeFileSync(out, html);
