// The demo page's load path on a phone-class CPU, measured from outside the
// page: headless Chromium opens the page served on 127.0.0.1, with the CPU
// unthrottled and throttled 4x through the DevTools protocol
// (Emulation.setCPUThrottlingRate, a mid-range phone), and records when the
// first screen is in the DOM: the top 10 cards with the model id shown.
//
// Per run, a fresh context (no cache, no storage) opens the page (cold),
// taps 12 cards and reloads it (warm: the taps stored, the blob and the
// page's files in the browser's caches, the tab's renderer alive), then
// opens it in a new tab (revisit: the same caches, a new renderer). Prints the medians of RUNS runs (default 5) and
// where the time goes: each request's start and end, and the page's own
// timings. A first screen counts only when its model id is the manifest's.
// Usage: node bench/load-path.mjs   (after `make demo-data`; RUNS=N to change;
//        BASELINE=DIR to measure another checkout side by side, see below)
import { readFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { servedCheckouts } from "./checkouts.mjs";
import { launchChromium, phoneContext } from "../scripts/chromium.mjs";
import { median } from "./stats.mjs";

const RUNS = Number(process.env.RUNS ?? 5);
const RATES = [1, 4];
const KINDS = ["cold", "warm", "revisit"];
const root = new URL("../", import.meta.url);
const modelId = JSON.parse(readFileSync(new URL("out/shop-model/manifest.json", root), "utf8")).model_id;

// Runs in the page before its own scripts: notes the time (ms since the
// navigation started) when the first screen is complete.
function watchFirstScreen(expectedId) {
  const done = () =>
    document.querySelectorAll("#specials > li").length >= 10 &&
    document.getElementById("model-id")?.textContent === expectedId;
  const observer = new MutationObserver(() => {
    if (window.__firstScreenMs === undefined && done()) {
      window.__firstScreenMs = performance.now();
      observer.disconnect();
      console.debug("nestrank-bench: first screen");
    }
  });
  observer.observe(document, { childList: true, subtree: true, characterData: true });
}


// Nothing is evaluated in the page until its first screen is in: the
// driver's own scripts would take the page's main thread.
const firstScreen = (page) =>
  page.waitForEvent("console", { predicate: (m) => m.text() === "nestrank-bench: first screen", timeout: 60_000 });

async function measure(page, shown) {
  await shown;
  await page.waitForFunction(() => window.nestrank?.ready === true, null, { timeout: 60_000, polling: 50 });
  return page.evaluate(() => {
    const short = (url) => new URL(url).pathname.replace(/^\/(model\/)?/, "").replace(/^.*\.nrk$/, "blob.nrk");
    const requests = performance.getEntriesByType("resource").map((r) => ({
      name: short(r.name),
      start: r.startTime,
      end: r.responseEnd,
      bytes: r.transferSize,
    }));
    return { firstScreenMs: window.__firstScreenMs, requests, page: { ...window.nestrank.timings } };
  });
}

async function run(browser, rate, server) {
  const context = await phoneContext(browser);
  await context.addInitScript(watchFirstScreen, modelId);
  const open = async () => {
    const page = await context.newPage();
    const cdp = await context.newCDPSession(page);
    await cdp.send("Emulation.setCPUThrottlingRate", { rate });
    const shown = firstScreen(page);
    await page.goto(server.url, { waitUntil: "commit" });
    return [page, shown];
  };
  const [first, shown] = await open();
  const cold = await measure(first, shown);
  const cards = await first.$$("#specials > li .title");
  for (const c of cards.slice(0, 12)) await c.click();
  // Warm: a reload of the same tab (its renderer and what it compiled live on).
  const again = firstScreen(first);
  await first.reload({ waitUntil: "commit" });
  const warm = await measure(first, again);
  await first.close();
  // The return visit: a new tab of the same browser profile (a new renderer).
  const revisit = await measure(...(await open()));
  await context.close();
  return { cold, warm, revisit };
}

// BASELINE=DIR: another checkout measured in the same run, alternating.
const variants = await servedCheckouts();
const browser = await launchChromium();
try {
  console.log(`machine: ${cpus().length}x ${cpus()[0].model}, ${Math.round(totalmem() / 2 ** 30)} GiB; Chromium ${browser.version()}; median of ${RUNS}`);
  for (const v of variants) v.results = Object.fromEntries(RATES.map((r) => [r, []]));
  for (const rate of RATES) {
    for (let i = 0; i < RUNS; i++) for (const v of variants) v.results[rate].push(await run(browser, rate, v.server));
  }
  console.log("\nfirst screen (top 10 cards and the model id in the DOM), ms after navigation, median (range):");
  const columns = variants.flatMap((v) => RATES.map((r) => [v, r]));
  const label = ([v, r]) => `${variants.length > 1 ? `${v.name}, ` : ""}${r === 1 ? "unthrottled" : `${r}x throttled`}`;
  console.log(`| load | ${columns.map(label).join(" | ")} |`);
  console.log(`| --- |${columns.map(() => " ---: |").join("")}`);
  for (const kind of KINDS) {
    const cells = columns.map(([v, r]) => {
      const xs = v.results[r].map((x) => x[kind].firstScreenMs);
      return `${median(xs).toFixed(0)} (${Math.min(...xs).toFixed(0)}-${Math.max(...xs).toFixed(0)})`;
    });
    console.log(`| ${kind} | ${cells.join(" | ")} |`);
  }
  for (const v of variants) {
    for (const rate of RATES) {
      for (const kind of KINDS) {
        const results = v.results[rate];
        console.log(`\n${v.name}, ${kind}, CPU ${rate}x: each request's median start-end (ms) and bytes over the wire`);
        const byName = new Map();
        for (const r of results) {
          for (const q of r[kind].requests) {
            if (!byName.has(q.name)) byName.set(q.name, []);
            byName.get(q.name).push(q);
          }
        }
        const rows = [...byName].map(([name, qs]) => [name, median(qs.map((q) => q.start)), median(qs.map((q) => q.end)), median(qs.map((q) => q.bytes))]);
        rows.sort((a, b) => a[1] - b[1]);
        for (const [name, start, end, bytes] of rows) {
          console.log(`  ${name.padEnd(24)} ${start.toFixed(0).padStart(6)} - ${end.toFixed(0).padStart(6)}  ${String(bytes).padStart(8)}`);
        }
        const keys = Object.keys(results[0][kind].page);
        const page = keys.map((k) => `${k} ${median(results.map((r) => r[kind].page[k] ?? NaN)).toFixed(1)}`);
        console.log(`  the page's own timings (ms): ${page.join(", ")}`);
        console.log(`  first screen: ${median(results.map((r) => r[kind].firstScreenMs)).toFixed(0)}`);
      }
    }
  }
} finally {
  await browser.close();
  for (const v of variants) await v.server.close();
}
