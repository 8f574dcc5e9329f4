// The worker's figures in workerd (miniflare@4) on 127.0.0.1: the isolate's
// cold start, 1,000 personalized and 1,000 default requests (client-side
// latency over loopback, sequential), and the rerank time inside the worker.
// Usage: npm --prefix edge run bench
import { Miniflare } from "miniflare";
import { readFileSync } from "node:fs";
import { workerOptions } from "./config.mjs";
import { encodeSignals } from "../../pkg/node.js";

const specials = JSON.parse(readFileSync(new URL("../sample/specials.json", import.meta.url), "utf8"));
const now = Date.now() / 1000;
// 200 signals: views of 150 specials and carts of 50 over the last two days.
const signals = specials.items.slice(0, 200).map((s, k) => ({ item: s.id, event: k % 4 === 0 ? "cart" : "view", ts: now - 172800 + k * 800 }));
const cookie = `nr_signals=${encodeSignals(signals, 4000)}`;
const kept = cookie.length;

const pct = (a, p) => [...a].sort((x, y) => x - y)[Math.min(a.length - 1, Math.floor(a.length * p))];

const cold = [], firstReq = [];
for (let k = 0; k < 5; k++) {
  const t = performance.now();
  const mf = new Miniflare(workerOptions({ bench: true }));
  const url = await mf.ready;
  cold.push(performance.now() - t);
  const t2 = performance.now();
  await (await fetch(new URL("/specials", url), { headers: { cookie } })).text();
  firstReq.push(performance.now() - t2);
  await mf.dispose();
}

const mf = new Miniflare(workerOptions({ bench: true }));
const url = await mf.ready;
async function timed(path, headers, n) {
  const t = [];
  for (let i = 0; i < 100; i++) await (await fetch(new URL(path, url), { headers })).arrayBuffer();
  for (let i = 0; i < n; i++) {
    const a = performance.now();
    await (await fetch(new URL(path, url), { headers })).arrayBuffer();
    t.push(performance.now() - a);
  }
  return t;
}
const personalized = await timed("/specials", { cookie }, 1000);
const plain = await timed("/specials", {}, 1000);
const html = await timed("/", { cookie }, 1000);
const inside = [];
for (let r = 0; r < 5; r++) inside.push(await (await fetch(new URL("/__bench?n=2000", url), { headers: { cookie } })).json());
await mf.dispose();

const perCall = inside.map((x) => (x.ms / x.n) * 1000);
const decoded = signals.length;
console.log(`workerd via miniflare (Node ${process.version}); sample blob 1,500 items; 500 candidates; cookie of ${kept} chars (${decoded} signals encoded, the newest that fit 4,000)`);
console.log(`cold start (new Miniflare -> ready, workerd process + isolate): median ${pct(cold, 0.5).toFixed(0)} ms of 5; first request (model decode + rerank + JIT): median ${pct(firstReq, 0.5).toFixed(1)} ms`);
const row = (name, t) => console.log(`${name}: p50 ${pct(t, 0.5).toFixed(2)} ms, p99 ${pct(t, 0.99).toFixed(2)} ms (1,000 sequential requests over loopback)`);
row("GET /specials personalized (JSON)", personalized);
row("GET /specials default (no cookie)", plain);
row("GET / personalized (HTMLRewriter)", html);
console.log(`inside the worker, cookie decode + filter + rerank of 500 with reasons: median ${pct(perCall, 0.5).toFixed(0)} us per request (5 x 2,000 in one request; ${inside[0].why})`);
