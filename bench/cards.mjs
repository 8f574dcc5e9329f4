// The demo page after its first screen: how long the other 490 cards take
// to land, and how busy they keep a phone-class main thread (taps wait for
// it). Headless Chromium opens the page served on 127.0.0.1 with the CPU
// throttled 4x through the DevTools protocol, cold (a new profile) and warm
// (a reload), records Chromium's own trace, and sums the renderer main
// thread's tasks between the first screen (the top 10 cards and the model
// id) and the 500th card.
// Usage: node bench/cards.mjs   (after `make demo-data`; RUNS=N to change;
//        BASELINE=DIR serves another checkout beside this one, alternating)
import { readFileSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir, cpus, totalmem } from "node:os";
import { join } from "node:path";
import { servedCheckouts } from "./checkouts.mjs";
import { launchChromium, phoneContext } from "../scripts/chromium.mjs";
import { median } from "./stats.mjs";

const RUNS = Number(process.env.RUNS ?? 5);
const CARDS = 500;
const scratch = mkdtempSync(join(tmpdir(), "nestrank-cards-"));

// Runs in the page before its own scripts: marks the first screen and the
// last card, for the trace.
function watchCards(cards) {
  let first = false;
  const observer = new MutationObserver(() => {
    const n = document.querySelectorAll("#specials > li").length;
    if (!first && n >= 10 && document.getElementById("model-id")?.textContent !== "none") {
      first = true;
      performance.mark("nestrank-bench:first-screen");
    }
    if (n >= cards) {
      performance.mark("nestrank-bench:all-cards");
      observer.disconnect();
    }
  });
  observer.observe(document, { childList: true, subtree: true, characterData: true });
}

const allIn = (page) =>
  page.waitForFunction(() => performance.getEntriesByName("nestrank-bench:all-cards").length > 0, null, { timeout: 60_000, polling: 100 });

async function once(browser, url, warm) {
  const context = await phoneContext(browser);
  await context.addInitScript(watchCards, CARDS);
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Emulation.setCPUThrottlingRate", { rate: 4 });
  if (warm) {
    await page.goto(url, { waitUntil: "load" });
    await allIn(page);
  }
  const path = join(scratch, "trace.json");
  await browser.startTracing(page, { path, categories: ["devtools.timeline", "v8", "blink", "loading", "blink.user_timing", "disabled-by-default-devtools.timeline"] });
  if (warm) await page.reload({ waitUntil: "load" });
  else await page.goto(url, { waitUntil: "load" });
  await allIn(page);
  const marks = await page.evaluate(() =>
    Object.fromEntries(["first-screen", "all-cards"].map((n) => [n, performance.getEntriesByName(`nestrank-bench:${n}`).at(-1).startTime])),
  );
  await browser.stopTracing();
  await context.close();
  const events = JSON.parse(readFileSync(path, "utf8")).traceEvents;
  const main = new Set(events.filter((e) => e.name === "thread_name" && e.args?.name === "CrRendererMain").map((e) => `${e.pid}:${e.tid}`));
  const at = (n) => events.filter((e) => e.name === `nestrank-bench:${n}`).at(-1).ts;
  const [from, to] = [at("first-screen"), at("all-cards")];
  const tasks = events.filter((e) => e.ph === "X" && e.name === "RunTask" && main.has(`${e.pid}:${e.tid}`) && e.ts >= from && e.ts < to);
  if (tasks.length === 0) throw new Error("the trace holds no main-thread tasks between the first screen and the last card");
  return {
    firstScreen: marks["first-screen"],
    allCards: marks["all-cards"],
    busy: tasks.reduce((a, e) => a + e.dur, 0) / 1000,
    longest: Math.max(...tasks.map((e) => e.dur)) / 1000,
  };
}

const variants = await servedCheckouts();
const browser = await launchChromium();
try {
  console.log(`machine: ${cpus().length}x ${cpus()[0].model}, ${Math.round(totalmem() / 2 ** 30)} GiB; Chromium ${browser.version()}; CPU 4x; median of ${RUNS} (tracing on)`);
  console.log("| load | variant | first screen | all 500 cards | main thread busy in between | longest task |");
  console.log("| --- | --- | ---: | ---: | ---: | ---: |");
  for (const warm of [false, true]) {
    for (const v of variants) v.runs = [];
    for (let i = 0; i < RUNS; i++) for (const v of variants) v.runs.push(await once(browser, v.server.url, warm));
    for (const v of variants) {
      const m = (k) => median(v.runs.map((r) => r[k])).toFixed(0);
      console.log(`| ${warm ? "warm" : "cold"} | ${v.name} | ${m("firstScreen")} ms | ${m("allCards")} ms | ${m("busy")} ms | ${m("longest")} ms |`);
    }
  }
} finally {
  await browser.close();
  for (const v of variants) await v.server.close();
  rmSync(scratch, { recursive: true, force: true });
}
