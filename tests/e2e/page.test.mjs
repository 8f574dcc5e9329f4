// The demo page end to end, in Debian's headless Chromium (playwright-core),
// served on 127.0.0.1 with the built package and the synthetic shop's model:
// browsing one brand moves that brand up after a reload, reasons show, no
// request carries the signals, a reload downloads no blob, a corrupt
// blob or a missing wasm leaves the shop's own order with no page error, and
// a signed-in family's nightly profile orders a new phone's page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../../scripts/serve.mjs";
import { launchChromium, phoneContext } from "../../scripts/chromium.mjs";
import { goldenDifferences } from "../golden/run.js";
import { specials, defaultOrder, brandToBrowse, meanPosition } from "./shop.mjs";

const root = new URL("../../", import.meta.url);
const artifacts = new URL("test-artifacts/", root);
mkdirSync(artifacts, { recursive: true });

let server, browser;
before(async () => {
  server = await serve({ port: 0, tests: true });
  browser = await launchChromium();
});
after(async () => {
  await browser?.close();
  await server?.close();
});

// Opens the page in `context`, waits until it has reranked (or given up),
// and returns the display order and what went wrong.
async function open(page, query = "") {
  await page.goto(server.url + query);
  await page.waitForFunction(() => window.nestrank?.ready === true, null, { timeout: 30_000 });
  return page.$$eval("#specials > *", (cards) => cards.map((c) => c.dataset.itemId));
}

function watch(page) {
  const seen = { errors: [], warnings: [], requests: [] };
  page.on("pageerror", (e) => seen.errors.push(e.message));
  page.on("console", (m) => m.type() === "warning" && seen.warnings.push(m.text()));
  page.on("request", (r) => seen.requests.push(r));
  return seen;
}


test("browsing one brand moves it up after a reload, with reasons, and nothing leaves the phone", async () => {
  const context = await phoneContext(browser);
  const page = await context.newPage();
  const seen = watch(page);
  const first = await open(page);
  assert.equal(first.length, defaultOrder.length);
  // The load path: one script (the page bundled with the package, `make
  // pkg`), and the wasm, the specials and the model's manifest from the
  // HTML's preloads (none discovered late), each fetched once (loadModel
  // takes the preloaded manifest: the demo server sends it with
  // Cache-Control: no-cache).
  assert.equal(await page.evaluate(() => window.nestrank.simd), true, "Chromium runs the SIMD build");
  const asked = seen.requests.map((r) => r.url());
  assert.deepEqual(asked.filter((u) => /\.m?js$/.test(u)), [new URL("app.js", server.url).href], "one script");
  const preloaded = await page.$$eval('link[rel="preload"]', (ls) => ls.map((l) => l.href));
  const early = asked.filter((u) => /\.wasm$|specials\.json$|manifest\.json$/.test(u));
  assert.equal(early.length, 3, `the wasm and the data: ${early.join(", ")}`);
  for (const u of early) assert.ok(preloaded.includes(u), `${u} is preloaded by index.html`);
  assert.equal(new Set(early).size, early.length, `none fetched twice: ${early.join(", ")}`);
  assert.equal(await page.textContent("#model-id"), JSON.parse(readFileSync(new URL("out/shop-model/manifest.json", root))).model_id);
  assert.match(await page.textContent("#rerank-ms"), /^\d+\.\d\d$/);

  // The brand furthest down the page: tap four of its items from the lower
  // half, and add one to the cart.
  const { brand, before, tapped } = brandToBrowse(first);
  assert.equal(tapped.length, 4);
  for (const id of tapped) await page.click(`#specials > [data-item-id="${id}"] .title`);
  await page.click(`#specials > [data-item-id="${tapped[0]}"] [data-action="cart"]`);
  const stored = await page.evaluate(() => localStorage.getItem("nestrank:signals"));
  assert.ok(stored && stored.length > 10, "signals are kept in localStorage");
  // Item-to-item on the device: the last tap shows today's specials like it.
  const like = await page.$$eval("#similar-items > li", (li) => li.map((x) => [x.dataset.itemId, x.title]));
  assert.ok(await page.isVisible("#similar"), "the similar strip shows after a tap");
  assert.ok(like.length >= 3, `similar items: ${JSON.stringify(like)}`);
  for (const [id, reason] of like) {
    assert.ok(defaultOrder.includes(id) && id !== tapped[3], `${id} is another of today's specials`);
    assert.match(reason, /^(viewed|bought) together with |^more from /);
  }

  seen.requests.length = 0;
  const after = await open(page);
  const moved = meanPosition(after, brand);
  console.log(`brand ${brand}: mean position ${before.toFixed(1)} -> ${moved.toFixed(1)} of ${after.length}`);
  assert.ok(moved < before - 50, `brand ${brand} moved up: ${before.toFixed(1)} -> ${moved.toFixed(1)}`);
  for (const id of tapped) assert.ok(after.indexOf(id) < 20, `tapped ${id} is in the top 20 (at ${after.indexOf(id)})`);
  assert.equal(new Set(after).size, defaultOrder.length, "a permutation of the specials");
  assert.deepEqual([...after].sort(), [...defaultOrder].sort());

  const reasons = await page.$$eval("#specials > * .reason", (r) => r.slice(0, 20).map((x) => x.textContent));
  assert.ok(reasons.some((r) => r.startsWith("because you viewed ")), `reasons: ${reasons.join(" | ")}`);
  assert.ok(reasons.some((r) => r === "in your cart" || r === "you viewed this"), `own reasons: ${reasons.join(" | ")}`);

  // Privacy: no request of the reload carries the signals or the tapped ids.
  const urls = [];
  for (const r of seen.requests) {
    urls.push(r.url());
    const headers = JSON.stringify(await r.allHeaders());
    for (const secret of [stored, ...tapped]) {
      assert.ok(!r.url().includes(secret) && !headers.includes(secret) && !(r.postData() ?? "").includes(secret),
        `request ${r.url()} carries ${secret}`);
    }
  }
  assert.ok(!urls.some((u) => u.endsWith(".nrk")), `a reload downloads no blob (Cache API): ${urls.join(", ")}`);
  assert.deepEqual(seen.errors, []);
  await page.screenshot({ path: new URL("page.png", artifacts).pathname });
  await context.close();
});

test("the profile panel keeps the baby's birthday or due date on the phone and rejects nonsense", async () => {
  const context = await phoneContext(browser);
  const page = await context.newPage();
  const seen = watch(page);
  await open(page);
  // A plain field at load (the date input's icon costs the first screen
  // time), a date input, with the phone's date picker, once opened.
  assert.equal(await page.getAttribute("#birthday", "type"), "text");
  await page.click("#profile summary");
  await page.waitForFunction(() => document.getElementById("birthday").type === "date");
  const due = new Date(Date.now() + 60 * 86400e3).toISOString().slice(0, 10);
  await page.fill("#birthday", due);
  await page.click("#profile-form button[type=submit]");
  assert.match(await page.textContent("#stage"), /due in \d+ weeks \(3rd trimester\)/);
  await page.fill("#birthday", "1990-01-01");
  await page.click("#profile-form button[type=submit]");
  assert.match(await page.textContent("#profile-message"), /too long ago \(allowed: up to 300 days ahead, up to 12 years ago\)/);
  const withProfile = await open(page);
  assert.match(await page.textContent("#stage"), /due in/, "the saved profile survives a reload");
  const fits = await page.$$eval(".fits", (f) => f.length);
  assert.ok(fits > 0, "cards that fit a pregnancy are marked");
  // The scorer's stage fit: what suits a pregnancy rises, with no taps at all.
  const pregnancy = new Set(specials.items.filter((s) => s.ageMax <= 2 && s.ageMin < 0).map((s) => s.id));
  const mean = (order) => order.reduce((a, id, k) => a + (pregnancy.has(id) ? k : 0), 0) / pregnancy.size;
  console.log(`pregnancy items: mean position ${mean(defaultOrder).toFixed(1)} -> ${mean(withProfile).toFixed(1)} with a due date`);
  assert.ok(mean(withProfile) < mean(defaultOrder) - 50, "pregnancy items rise with a due date");
  assert.match(await page.textContent("#status"), /your baby's stage/);
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test("a corrupt blob or a missing wasm leaves the shop's own order, one warning, no page error", async () => {
  for (const [what, pattern, fulfil] of [
    ["corrupt blob", "**/*.nrk", async (route) => {
      const res = await route.fetch();
      const body = Buffer.from(await res.body());
      body[body.length >> 1] ^= 0xff;
      await route.fulfill({ response: res, body });
    }],
    ["missing wasm", "**/*.wasm", (route) => route.fulfill({ status: 404, body: "gone" })],
    ["missing manifest", "**/manifest.json", (route) => route.fulfill({ status: 500, body: "" })],
  ]) {
    const context = await phoneContext(browser); // a fresh cache: no last good blob
    const page = await context.newPage();
    const seen = watch(page);
    await page.route(pattern, fulfil);
    const order = await open(page);
    assert.deepEqual(order, defaultOrder, `${what}: the default order`);
    assert.deepEqual(seen.errors, [], `${what}: no page error`);
    const ours = seen.warnings.filter((w) => w.includes("nestrank"));
    assert.equal(ours.length, 1, `${what}: one warning, got ${ours.join(" | ")}`);
    assert.equal(await page.textContent("#model-id"), "none");
    await context.close();
  }
});

// Where `users` put family `id`'s profile (profiles/HH/HH/ID.nrp).
function profileFile(id) {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(id)) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  const hex = h.toString(16).padStart(16, "0");
  return new URL(`out/shop-users/profiles/${hex.slice(0, 2)}/${hex.slice(2, 4)}/${id}.nrp`, root).pathname;
}

test("a signed-in family's nightly profile orders a new phone's page as the core does; a missing or corrupt one changes nothing", async () => {
  const context = await phoneContext(browser);
  const page = await context.newPage();
  const seen = watch(page);
  const order = await open(page, "?user=f0");
  const now = await page.evaluate(() => Date.now() / 1000);
  assert.deepEqual(seen.errors, []);
  assert.equal(await page.evaluate(() => window.nestrank.history), true, "the embedding ranked");
  assert.match(await page.textContent("#status"), /your history/);
  // A new phone without the profile: the order every newcomer gets.
  const plainContext = await phoneContext(browser);
  const newcomer = await open(await plainContext.newPage());
  await plainContext.close();
  assert.notDeepEqual(order.slice(0, 10), newcomer.slice(0, 10), "the family's history moved the first screen");
  // The native core, with the same blob, profile and day, orders alike.
  const work = mkdtempSync(join(tmpdir(), "nestrank-e2e-"));
  writeFileSync(join(work, "candidates.txt"), defaultOrder.join("\n"));
  const manifest = JSON.parse(readFileSync(new URL("out/shop-model/manifest.json", root)));
  const native = JSON.parse(execFileSync(new URL("target/demo/builder/model-builder", root).pathname, [
    "rerank", "--model", new URL(`out/shop-model/${manifest.file}`, root).pathname, "--candidates", join(work, "candidates.txt"),
    "--now", String(now), "--profile", profileFile("f0"),
  ], { encoding: "utf8" })).items;
  assert.deepEqual(order, native, "the page's order is the native core's");
  await context.close();
  for (const [what, user, fulfil] of [
    ["no such family", "nobody", null],
    ["a corrupt profile", "f0", async (route) => {
      const res = await route.fetch();
      const body = Buffer.from(await res.body());
      body[body.length >> 1] ^= 0xff;
      await route.fulfill({ response: res, body });
    }],
  ]) {
    const context = await phoneContext(browser);
    const page = await context.newPage();
    const seen = watch(page);
    if (fulfil) await page.route("**/profile/*.nrp", fulfil);
    const order = await open(page, `?user=${user}`);
    assert.deepEqual(order, newcomer, `${what}: the order anyone new gets`);
    assert.deepEqual(seen.errors, [], what);
    assert.equal(await page.evaluate(() => window.nestrank.history), false, what);
    if (fulfil) assert.ok(seen.warnings.some((w) => /ignoring the nightly profile/.test(w)), `${what}: ${seen.warnings}`);
    await context.close();
  }
});

test("opted in, the page writes the nr_signals cookie that the edge worker personalizes from", async () => {
  const { Miniflare } = await import("../../edge/node_modules/miniflare/dist/src/index.js");
  const { workerOptions } = await import("../../edge/scripts/config.mjs");
  const context = await phoneContext(browser);
  const page = await context.newPage();
  const seen = watch(page);
  await page.route("**/", async (route) => {
    const res = await route.fetch();
    const html = (await res.text()).replace('content="off"', 'content="nr_signals"');
    await route.fulfill({ response: res, body: html });
  });
  const order = await open(page);
  const tapped = order.slice(-3);
  for (const id of tapped) await page.click(`#specials > [data-item-id="${id}"] .title`);
  const cookie = (await context.cookies()).find((c) => c.name === "nr_signals");
  assert.ok(cookie, "the page wrote nr_signals");
  assert.match(cookie.value, /^[A-Za-z0-9_-]+$/);
  assert.deepEqual(seen.errors, []);
  await context.close();
  const mf = new Miniflare(workerOptions());
  try {
    const res = await fetch(new URL("/specials", await mf.ready), { headers: { cookie: `nr_signals=${cookie.value}` } });
    const json = await res.json();
    assert.equal(json.personalized, true);
    const top = json.items.slice(0, 10).map((i) => i.id);
    for (const id of tapped) assert.ok(top.includes(id), `${id} tapped on the page is in the worker's top 10`);
  } finally {
    await mf.dispose();
  }
});

test("Chromium: the golden v4 cases (profiles, rules, similar) equal the native core's", async () => {
  const expected = JSON.parse(readFileSync(new URL("tests/data/golden-v4-expected.json", root), "utf8"));
  const context = await phoneContext(browser);
  const page = await context.newPage();
  await page.goto(`${server.url}tests/golden/index.html`);
  await page.waitForFunction(() => window.goldenResults !== undefined, null, { timeout: 30_000 });
  const actual = await page.evaluate(() => window.goldenResults);
  assert.ok(Array.isArray(actual), JSON.stringify(actual));
  assert.deepEqual(goldenDifferences(actual, expected.results), []);
  await context.close();
});

test("an experiment: each visitor's variant serves its order, sticks across reloads, and tags every reported tap with the rank shown", async () => {
  const { Recommender, encodeSignals } = await import("../../pkg/node.js");
  const manifest = JSON.parse(readFileSync(new URL("out/shop-model/manifest.json", root)));
  const experiment = {
    name: "e2e-launch",
    variants: [{ name: "control", share: 50, order: "shop" }, { name: "nestrank", share: 50 }],
  };
  // Visitor ids in each variant, by the package's own assignment.
  const rec = Recommender.fromBytes(readFileSync(new URL(`out/shop-model/${manifest.file}`, root)));
  rec.setExperiment(experiment);
  const visitorIn = (name) => {
    for (let k = 0; ; k++) {
      const id = `e2e-visitor-${k}`;
      if (rec.setVisitor(id) === name) return id;
    }
  };
  const visitors = { control: visitorIn("control"), nestrank: visitorIn("nestrank") };
  rec.free();
  // The same taps on both phones: four of the brand furthest down.
  const { brand, before, tapped } = brandToBrowse(defaultOrder);
  const now = Date.now() / 1000;
  const signals = encodeSignals(tapped.map((item, k) => ({ item, event: "view", ts: Math.floor(now) - 600 + k })));
  const phone = async (visitor, json) => {
    const context = await phoneContext(browser);
    await context.addInitScript(([v, s]) => {
      localStorage.setItem("nestrank:visitor", v);
      localStorage.setItem("nestrank:signals", s);
    }, [visitor, signals]);
    const page = await context.newPage();
    await page.route("**/data/experiment.json", (route) => route.fulfill({ contentType: "application/json", body: json }));
    return { context, page, seen: watch(page) };
  };
  for (const [variant, visitor] of Object.entries(visitors)) {
    const { context, page, seen } = await phone(visitor, JSON.stringify(experiment));
    for (const visit of [1, 2]) {
      const order = await open(page, "?experiment=data/experiment.json");
      assert.equal(await page.getAttribute("body", "data-variant"), variant, `visit ${visit}: sticky`);
      if (variant === "control") {
        assert.deepEqual(order, defaultOrder, "the control shows the shop's order");
        assert.equal(await page.textContent("#status"), "Shop's picks");
      } else {
        const moved = meanPosition(order, brand);
        assert.ok(moved < before - 50, `nestrank moves ${brand} up: ${before.toFixed(1)} -> ${moved.toFixed(1)}`);
      }
      const rank = 3;
      const id = order[rank - 1];
      await page.click(`#specials > [data-item-id="${id}"] .title`);
      const events = await page.evaluate(() => window.nestrank.events);
      assert.deepEqual(events.map((e) => [e.kind, e.variant]), [["page", variant], ["view", variant]]);
      assert.equal(events[1].item, id);
      assert.equal(events[1].shownRank, rank);
      assert.equal(events[1].propensity, 1, "placed by the ranker, not drawn");
    }
    assert.deepEqual(seen.errors, []);
    await context.close();
  }
  // A malformed experiment: refused with one warning; the page ranks as without one.
  const bad = JSON.stringify({ ...experiment, variants: [experiment.variants[0]] });
  const { context, page, seen } = await phone(visitors.control, bad);
  const order = await open(page, "?experiment=data/experiment.json");
  assert.equal(await page.getAttribute("body", "data-variant"), null);
  assert.ok(seen.warnings.some((w) => /no experiment: experiment: variants: the shares add up to 50%/.test(w)), `${seen.warnings}`);
  assert.ok(meanPosition(order, brand) < before - 50, "ranked by nestrank, as without an experiment");
  assert.deepEqual(await page.evaluate(() => window.nestrank.events), []);
  assert.deepEqual(seen.errors, []);
  await context.close();
});

test("model-builder report: the experiment's HTML renders on its own, with its charts, and fetches nothing", async () => {
  const builder = new URL("target/demo/builder/model-builder", root).pathname;
  const work = mkdtempSync(join(tmpdir(), "nestrank-report-"));
  const run = (args) => execFileSync(builder, args, { encoding: "utf8" });
  run(["simulate", "--data", new URL("out/shop", root).pathname, "--model", new URL("out/shop-model", root).pathname,
    "--days", "3", "--seed", "7", "--out", join(work, "ab")]);
  run(["report", "--data", join(work, "ab"), "--out", join(work, "report.html"), "--model", new URL("out/shop-model", root).pathname]);
  const json = JSON.parse(run(["report", "--data", join(work, "ab"), "--json"]));
  const context = await browser.newContext({ viewport: { width: 960, height: 900 } });
  const page = await context.newPage();
  const seen = watch(page);
  await page.goto(`file://${join(work, "report.html")}`);
  const verdict = await page.textContent(".verdict");
  assert.equal(verdict, json.lift.nestrank.verdict);
  const charts = await page.$$eval("svg", (svgs) => svgs.map((s) => [s.getBoundingClientRect().width, s.querySelectorAll("rect, polyline").length]));
  assert.ok(charts.length >= 5, `charts: ${JSON.stringify(charts)}`);
  for (const [width, marks] of charts) assert.ok(width > 300 && marks > 0, `a chart draws: ${JSON.stringify(charts)}`);
  const rows = await page.$$eval("table tr", (trs) => trs.map((t) => t.textContent));
  assert.ok(rows.some((r) => r.startsWith("control")) && rows.some((r) => r.startsWith("nestrank")), rows.join(" | "));
  assert.deepEqual(seen.requests.map((r) => r.url()), [`file://${join(work, "report.html")}`], "nothing but the file");
  assert.deepEqual(seen.errors, []);
  await page.screenshot({ path: new URL("report.png", artifacts).pathname, fullPage: true });
  await context.close();
});
