// The package's two builds of the core, nestrank_bg.wasm and
// nestrank_simd_bg.wasm (wasm SIMD, which the package picks where the engine
// validates it), give the same results to the bit: the golden v4 cases
// (profiles, rules, similar(), the factor fold-in) and random reranks. Run
// under Node (V8) and, by `bun test`, under JavaScriptCore.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { loadNestrank, pkgDir } from "../../scripts/node-pkg.mjs";
import { runGolden, goldenDifferences } from "../golden/run.js";

const data = new URL("../data/", import.meta.url);
const spec = JSON.parse(readFileSync(new URL("golden-v4-cases.json", data), "utf8"));
const expected = JSON.parse(readFileSync(new URL("golden-v4-expected.json", data), "utf8"));
const blob = readFileSync(new URL(spec.blob, data));
const profiles = spec.profiles.map((f) => readFileSync(new URL(f, data)));
const FILES = ["nestrank_bg.wasm", "nestrank_simd_bg.wasm"];

// The features the build was compiled with (its target_features section).
function features(file) {
  const module = new WebAssembly.Module(readFileSync(pkgDir + file));
  const [section] = WebAssembly.Module.customSections(module, "target_features");
  return new TextDecoder().decode(section);
}

test("the SIMD build is the one with SIMD, and the package picks it here", async () => {
  assert.doesNotMatch(features("nestrank_bg.wasm"), /simd128/);
  assert.match(features("nestrank_simd_bg.wasm"), /simd128/);
  const { simd, wasmFile, wasmUrl } = await import(new URL("wasm.js", `file://${pkgDir}`));
  assert.equal(simd, true, "Node and Bun validate wasm SIMD");
  assert.equal(wasmFile, "nestrank_simd_bg.wasm");
  assert.equal(wasmUrl("https://shop.example/static/").href, "https://shop.example/static/nestrank_simd_bg.wasm");
});

test("both builds: the golden v4 cases as the native core, and the same results to the bit", async () => {
  const [scalar, simd] = await Promise.all(FILES.map((f) => loadNestrank(f)));
  assert.notEqual(scalar, simd, "two instances of the glue");
  const results = [scalar, simd].map((nestrank) => runGolden(nestrank, blob, profiles, spec));
  for (const actual of results) assert.deepEqual(goldenDifferences(actual, expected.results), []);
  assert.deepStrictEqual(results[1], results[0]);
});

test("both builds: 300 random reranks of the golden blob in the same order", async () => {
  const [scalar, simd] = await Promise.all(FILES.map((f) => loadNestrank(f)));
  assert.notEqual(scalar, simd, "two instances of the glue");
  const [a, b] = [scalar, simd].map((m) => m.Recommender.fromBytes(blob));
  const n = a.itemCount;
  let seed = 17;
  const next = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8;
  let folded = 0;
  for (let round = 0; round < 300; round++) {
    const candidates = Uint32Array.from({ length: 1 + (next() % 300) }, () => next() % (n + 3));
    const count = next() % 60;
    const items = Uint32Array.from({ length: count }, () => next() % n);
    const events = Uint8Array.from({ length: count }, () => next() % 4);
    const ts = Float64Array.from({ length: count }, () => 1_700_000_000 - (next() % 5_000_000));
    const [oa, ob] = [a, b].map((r) => r.rerankIndices(candidates, items, events, ts, 1_700_000_000));
    assert.deepEqual([...ob], [...oa], `round ${round}`);
    if (count > 0) folded++;
  }
  assert.ok(folded > 250);
});
