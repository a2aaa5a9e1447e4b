// Bundle the dashboard into the Python package: src/datahub/api/static/ gets index.html,
// dashboard.js and dashboard.css (Leaflet and uPlot included) and Leaflet's images.
// Run by `make web` (npm ci first); the output is not committed.

import { createHash } from "node:crypto";
import { copyFile, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";

import * as esbuild from "esbuild";

const here = path.dirname(fileURLToPath(import.meta.url));
const outdir = path.resolve(here, "..", "src", "datahub", "api", "static");

await rm(outdir, { recursive: true, force: true });
await mkdir(outdir, { recursive: true });

const result = await esbuild.build({
  entryPoints: {
    dashboard: path.join(here, "src", "main.js"),
    operator: path.join(here, "src", "operator.js"),
  },
  bundle: true,
  minify: true,
  sourcemap: "linked",
  format: "iife",
  target: ["es2020"],
  outdir,
  loader: { ".png": "file", ".svg": "file" },
  assetNames: "images/[name]-[hash]",
  legalComments: "linked",
  metafile: true,
  logLevel: "warning",
});

// Version the asset URLs by content, so a rebuilt bundle is never mixed with a cached one.
const version = async (name) =>
  createHash("sha256")
    .update(await readFile(path.join(outdir, name)))
    .digest("hex")
    .slice(0, 12);
for (const [source, bundle] of [
  ["index.html", "dashboard"],
  ["operator.html", "operator"],
]) {
  const page = (await readFile(path.join(here, "src", source), "utf8"))
    .replace("__JS_VERSION__", await version(`${bundle}.js`))
    .replace("__CSS_VERSION__", await version(`${bundle}.css`));
  await writeFile(path.join(outdir, source), page);
}
await copyFile(path.join(here, "src", "favicon.svg"), path.join(outdir, "favicon.svg"));

const sizes = Object.entries(result.metafile.outputs)
  .filter(([file]) => !file.endsWith(".map"))
  .map(([file, info]) => `${path.basename(file)} ${(info.bytes / 1024).toFixed(0)} KiB`);
console.log(`[web] built ${path.relative(process.cwd(), outdir)}: ${sizes.join(", ")}`);
