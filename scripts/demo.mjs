// The demo: rerank one day's specials for three users through the wasm
// module (not the native build), and print the top 10 before and after.
// Usage: node scripts/demo.mjs <data dir> <model dir> <YYYY-MM-DD>
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { loadNestrank, readEvents, specialsOf } from "./node-pkg.mjs";

const [dataDir, modelDir, date] = process.argv.slice(2);
if (!date) {
  console.error("usage: node scripts/demo.mjs <data dir> <model dir> <YYYY-MM-DD>");
  process.exit(2);
}
const { Recommender } = await loadNestrank();
const manifest = JSON.parse(readFileSync(join(modelDir, "manifest.json"), "utf8"));
const rec = Recommender.fromBytes(readFileSync(join(modelDir, manifest.file)));
console.log(`model ${rec.modelId} (format v${rec.formatVersion}, as of ${rec.asOf}, ${rec.itemCount} items)`);

const events = readEvents(join(dataDir, "events.csv"));
const specials = specialsOf(events, date);
const start = Date.parse(date + "T00:00:00Z") / 1000;
console.log(`${specials.length} specials on ${date}\n`);

// Three users who bought or carted a special that day, each seen just
// before that first conversion: their signals are everything earlier.
const inSpecials = new Set(specials);
const picked = [];
for (const e of events) {
  if (picked.length === 3) break;
  if (e.ts >= start && e.ts < start + 86400 && (e.event === "cart" || e.event === "purchase")
      && inSpecials.has(e.item) && !picked.some((p) => p.user === e.user)) {
    const history = events.filter((x) => x.user === e.user && x.ts < e.ts);
    if (history.length >= 5) picked.push({ user: e.user, target: e.item, now: e.ts, history });
  }
}

const pad = (s, n) => String(s).padEnd(n);
for (const p of picked) {
  const signals = p.history.map((e) => ({ item: e.item, event: e.event, ts: e.ts }));
  const t0 = performance.now();
  const out = rec.rerank(specials, signals, { now: p.now, limit: 10, explain: true });
  const ms = performance.now() - t0;
  const when = new Date(p.now * 1000).toISOString().slice(0, 16).replace("T", " ");
  console.log(`user ${p.user} at ${when} UTC, ${signals.length} signals; then converted on item ${p.target} (marked *)`);
  console.log(`  rerank of ${specials.length} took ${ms.toFixed(2)} ms`);
  console.log(`  ${pad("#", 3)}${pad("before", 12)}${pad("after", 12)}reason`);
  for (let k = 0; k < 10; k++) {
    const before = specials[k] + (specials[k] === p.target ? "*" : "");
    const after = out.items[k] + (out.items[k] === p.target ? "*" : "");
    console.log(`  ${pad(k + 1, 3)}${pad(before, 12)}${pad(after, 12)}${out.reasons[k]}`);
  }
  const rankBefore = specials.indexOf(p.target) + 1;
  const full = rec.rerank(specials, signals, { now: p.now, explain: false });
  const rankAfter = full.items.indexOf(p.target) + 1;
  console.log(`  the converted item: rank ${rankBefore} before, ${rankAfter} after\n`);
}
