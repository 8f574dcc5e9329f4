// Rerank timings of the wasm package under Node, on the demo model: a day's
// 500 specials x a user's signals, string API and typed API, after warm-up;
// the build the package picks here (SIMD), then the scalar build that
// engines without wasm SIMD run, on the same inputs in the same process.
// Usage: node bench/node-rerank.mjs <data dir> <model dir> <YYYY-MM-DD>
// (make bench-quick builds the inputs and runs it.)
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadNestrank, readEvents, specialsOf } from "../scripts/node-pkg.mjs";
import { parseModel, makeRanker } from "./js-reference.mjs";
import { stats } from "./stats.mjs";

const [dataDir, modelDir, date] = process.argv.slice(2);
const t0 = performance.now();
const { Recommender } = await loadNestrank();
const tInit = performance.now() - t0;
const scalar = await loadNestrank("nestrank_bg.wasm"); // not in tInit
const manifest = JSON.parse(readFileSync(join(modelDir, "manifest.json"), "utf8"));
const bytes = readFileSync(join(modelDir, manifest.file));
const t1 = performance.now();
const rec = Recommender.fromBytes(bytes);
const tFirstLoad = performance.now() - t1;
// Like the reranks: median and p99 after warm-up (the engine tiers the
// decoder up after a few calls; the first call is reported on its own).
const load = stats(() => Recommender.fromBytes(bytes).free(), { rounds: 3, runs: 100, warm: 20 });

const events = readEvents(join(dataDir, "events.csv"));
const specials = specialsOf(events, date);
const start = Date.parse(date + "T00:00:00Z") / 1000;
// 200 signals: the most active user's latest events before the day.
const byUser = new Map();
for (const e of events) if (e.ts < start) (byUser.get(e.user) ?? byUser.set(e.user, []).get(e.user)).push(e);
const history = [...byUser.values()].sort((a, b) => b.length - a.length)[0].slice(-200);
const signals = history.map((e) => ({ item: e.item, event: e.event, ts: e.ts }));
const code = { view: 0, fav: 1, cart: 2, purchase: 3 };
const idx = rec.indexOf(specials);
const sigItems = rec.indexOf(signals.map((s) => s.item));
const sigEvents = Uint8Array.from(signals.map((s) => code[s.event]));
const sigTs = Float64Array.from(signals.map((s) => s.ts));

const typed = stats(() => rec.rerankIndices(idx, sigItems, sigEvents, sigTs, start));
const strings = stats(() => rec.rerank(specials, signals, { now: start, explain: true }));
// The plain-JS reference on the same inputs: the same order (near-ties
// aside), timed in the same process.
const jsRank = makeRanker(parseModel(bytes));
const wasmOrder = rec.rerankIndices(idx, sigItems, sigEvents, sigTs, start);
const jsOrder = jsRank(idx, sigItems, sigEvents, sigTs, start);
const same = [...wasmOrder.slice(0, 10)].filter((p, k) => p === jsOrder[k]).length;
const js = stats(() => jsRank(idx, sigItems, sigEvents, sigTs, start));
const rec2 = scalar.Recommender.fromBytes(bytes);
const typed2 = stats(() => rec2.rerankIndices(idx, sigItems, sigEvents, sigTs, start));
const strings2 = stats(() => rec2.rerank(specials, signals, { now: start, explain: true }));
const fmt = (x) => x.toFixed(1);
console.log(`model: ${manifest.bytes} bytes, ${rec.itemCount} items; ${specials.length} candidates x ${signals.length} signals`);
console.log(`instantiate (initSync): ${tInit.toFixed(2)} ms; fromBytes: first ${tFirstLoad.toFixed(2)} ms, median ${(load.median_us / 1000).toFixed(2)} ms, p99 ${(load.p99_us / 1000).toFixed(2)} ms`);
console.log("the SIMD build (nestrank_simd_bg.wasm, what the package runs here):");
console.log(`rerankIndices (typed): median ${fmt(typed.median_us)} us, p99 ${fmt(typed.p99_us)} us`);
console.log(`rerank (string ids, reasons): median ${fmt(strings.median_us)} us, p99 ${fmt(strings.p99_us)} us`);
console.log(`boundary cost (string API minus typed API): ${fmt(strings.median_us - typed.median_us)} us`);
console.log(`plain-JS reference (same scoring, typed inputs): median ${fmt(js.median_us)} us, p99 ${fmt(js.p99_us)} us; wasm is ${(js.median_us / typed.median_us).toFixed(1)}x faster; top 10 identical at ${same}/10 positions`);
console.log(`the scalar build (nestrank_bg.wasm, for engines without wasm SIMD): rerankIndices (typed) median ${fmt(typed2.median_us)} us, p99 ${fmt(typed2.p99_us)} us; rerank (string ids, reasons) median ${fmt(strings2.median_us)} us, p99 ${fmt(strings2.p99_us)} us; the JS reference is ${(js.median_us / typed2.median_us).toFixed(1)}x the typed time`);
