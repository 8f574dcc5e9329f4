// Regenerates edge/sample/ from the synthetic shop (make edge-sample):
// the day's specials, the origin's non-personalized page, and a small
// daily blob (specials + the 1,000 most recently active items, K = 20).
// Usage: node edge/scripts/make-sample.mjs <shop dir> <model dir>
import { readFileSync, writeFileSync, copyFileSync } from "node:fs";
import { renderPage } from "../src/page.js";

const [shop, modelDir] = process.argv.slice(2);
const sample = new URL("../sample/", import.meta.url);
const specials = JSON.parse(readFileSync(`${shop}/specials.json`, "utf8"));
writeFileSync(new URL("specials.json", sample), JSON.stringify(specials) + "\n");
writeFileSync(new URL("index.html", sample), renderPage(specials));
const manifest = JSON.parse(readFileSync(`${modelDir}/manifest.json`, "utf8"));
copyFileSync(`${modelDir}/${manifest.file}`, new URL("model.nrk", sample));
console.log(`edge/sample: ${specials.items.length} specials of ${specials.date}, model ${manifest.model_id} (${manifest.bytes} bytes)`);
