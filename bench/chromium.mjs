// The wasm figures in headless Chromium (Debian's, driven by playwright-core):
// serves the repository on 127.0.0.1, opens bench/browser/index.html, prints
// what it measured. Usage: node bench/chromium.mjs <data dir> <model dir> <YYYY-MM-DD>
import { createServer } from "node:http";
import { readFileSync, writeFileSync, existsSync, statSync } from "node:fs";
import { join, extname, resolve } from "node:path";
import { readEvents, specialsOf } from "../scripts/node-pkg.mjs";
import { launchChromium, phoneContext } from "../scripts/chromium.mjs";
import { serve } from "../scripts/serve.mjs";
const root = resolve(new URL("..", import.meta.url).pathname);
const [dataDir, modelDir, date] = process.argv.slice(2);

// The same inputs as bench/node-rerank.mjs.
const manifest = JSON.parse(readFileSync(join(modelDir, "manifest.json"), "utf8"));
const events = readEvents(join(dataDir, "events.csv"));
const start = Date.parse(date + "T00:00:00Z") / 1000;
const byUser = new Map();
for (const e of events) if (e.ts < start) (byUser.get(e.user) ?? byUser.set(e.user, []).get(e.user)).push(e);
const history = [...byUser.values()].sort((a, b) => b.length - a.length)[0].slice(-200);
writeFileSync(join(root, "out/bench-inputs.json"), JSON.stringify({
  file: manifest.file,
  specials: specialsOf(events, date),
  signals: history.map((e) => ({ item: e.item, event: e.event, ts: e.ts })),
  now: start,
}));

const types = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".wasm": "application/wasm", ".json": "application/json" };
const server = createServer((req, res) => {
  const path = join(root, decodeURIComponent(new URL(req.url, "http://x").pathname));
  if (!path.startsWith(root) || !existsSync(path) || statSync(path).isDirectory()) {
    res.writeHead(404).end();
    return;
  }
  res.writeHead(200, { "content-type": types[extname(path)] ?? "application/octet-stream" });
  res.end(readFileSync(path));
});
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const url = `http://127.0.0.1:${server.address().port}/bench/browser/index.html`;
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  page.on("pageerror", (e) => { console.error("page error:", e.message); process.exitCode = 1; });
  await page.goto(url);
  const r = await page.waitForFunction(() => window.__bench, null, { timeout: 120_000 }).then((h) => h.jsonValue());
  const v = await browser.version();
  const f = (x) => x.toFixed(1);
  console.log(`Chromium ${v}: ${r.candidates} candidates x ${r.signals} signals, blob ${r.blob_bytes} bytes`);
  console.log(`instantiate (init): ${f(r.instantiate_ms)} ms; fromBytes: first ${r.first_load_ms.toFixed(2)} ms, median after warm-up ${r.load_ms.toFixed(2)} ms`);
  console.log(`rerankIndices (typed): median ${f(r.typed.median_us)} us, p99 of 20-call batch means ${f(r.typed.p99_us)} us`);
  console.log(`rerank (string ids, reasons): median ${f(r.strings.median_us)} us, p99 of 20-call batch means ${f(r.strings.p99_us)} us`);
  // The demo page's own instrumentation (window.nestrank.timings): a cold
  // load (fresh context: no cached wasm or blob) and a warm reload, 10 each,
  // with 20 taps of signals in localStorage.
  const shop = await serve({ port: 0 });
  try {
    const cold = [], warm = [];
    for (let k = 0; k < 10; k++) {
      const context = await phoneContext(browser);
      const page = await context.newPage();
      const load = async () => {
        await page.goto(shop.url);
        await page.waitForFunction(() => window.nestrank?.ready === true);
        return page.evaluate(() => window.nestrank.timings);
      };
      await load();
      const ids = await page.$$eval("#specials > *", (c) => c.slice(0, 200).map((x) => x.dataset.itemId));
      for (const id of ids.filter((_, i) => i % 10 === 3)) await page.click(`[data-item-id="${id}"] .title`);
      cold.push(await (async () => {
        const fresh = await phoneContext(browser);
        const p = await fresh.newPage();
        await p.goto(shop.url);
        await p.waitForFunction(() => window.nestrank?.ready === true);
        const t = await p.evaluate(() => window.nestrank.timings);
        await fresh.close();
        return t;
      })());
      warm.push(await load());
      await context.close();
    }
    const med = (a, key) => a.map((t) => t[key]).sort((x, y) => x - y)[a.length >> 1];
    const row = (name, a) =>
      console.log(`demo page, ${name}: instantiate ${med(a, "instantiateMs").toFixed(1)} ms, model fetch ${med(a, "fetchMs").toFixed(1)} ms, verify+decode ${med(a, "decodeMs").toFixed(1)} ms, rerank of 500 ${med(a, "rerankMs").toFixed(2)} ms (medians of ${a.length})`);
    row("cold load (no signals)", cold);
    row("warm reload (20 taps, cached blob)", warm);
  } finally {
    await shop.close();
  }
} finally {
  await browser.close();
  server.close();
}
