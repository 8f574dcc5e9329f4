// The demo page end to end in WebKit, the engine of every iPhone webview:
// WebKitGTK's MiniBrowser driven through WebKitWebDriver (W3C WebDriver over
// HTTP) on a private Xvfb display, the page served on 127.0.0.1 with the
// built package and the synthetic shop's model. Taps (real clicks) move a
// brand up after a reload, with reasons and the model id shown, and a corrupt
// blob leaves the shop's own order. The driver, the display
// and the servers are started here and stopped at the end.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, copyFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "../../scripts/serve.mjs";
import { goldenDifferences } from "../golden/run.js";
import { defaultOrder, brandToBrowse, meanPosition } from "./shop.mjs";

const MINIBROWSER = "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser";
const root = new URL("../../", import.meta.url);
const manifest = JSON.parse(readFileSync(new URL("out/shop-model/manifest.json", root), "utf8"));

const freePort = () =>
  new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });

// A display number no X server holds.
function freeDisplay() {
  for (let n = 90; n < 200; n++) if (!existsSync(`/tmp/.X11-unix/X${n}`) && !existsSync(`/tmp/.X${n}-lock`)) return n;
  throw new Error("no free X display between :90 and :199");
}

// Polls `probe` until it returns a truthy value or `ms` pass.
async function until(probe, ms, what) {
  const end = Date.now() + ms;
  let last;
  while (Date.now() < end) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last?.message ?? JSON.stringify(last)})`);
}

let xvfb, driver, driverUrl, server, corruptServer, corruptDir;

// One W3C WebDriver command; throws the driver's error message.
async function wd(method, path, body) {
  const res = await fetch(`${driverUrl}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await res.json();
  if (!res.ok) throw new Error(`${method} ${path}: ${json.value?.error}: ${json.value?.message}`);
  return json.value;
}

async function newSession() {
  const { sessionId } = await wd("POST", "/session", {
    capabilities: {
      alwaysMatch: { "webkitgtk:browserOptions": { binary: MINIBROWSER, args: ["--automation"] } },
    },
  });
  const s = `/session/${sessionId}`;
  const session = {
    go: (url) => wd("POST", `${s}/url`, { url }),
    reload: () => wd("POST", `${s}/refresh`, {}),
    run: (script, ...args) => wd("POST", `${s}/execute/sync`, { script, args }),
    close: () => wd("DELETE", s),
    // A real click, as a tap: the element is centred first (the sticky
    // header would cover one scrolled to the top).
    async click(css) {
      const el = await wd("POST", `${s}/element`, { using: "css selector", value: css });
      await this.run('arguments[0].scrollIntoView({ block: "center" })', el);
      await wd("POST", `${s}/element/${Object.values(el)[0]}/click`, {});
    },
    // Opens `url` and waits until the page has reranked (or given up).
    async open(url, reload = false) {
      await (reload ? this.reload() : this.go(url));
      await until(() => this.run("return window.nestrank && window.nestrank.ready === true"), 30_000, "the page");
      return this.run('return [...document.querySelectorAll("#specials > *")].map((c) => c.dataset.itemId)');
    },
  };
  return session;
}

before(async () => {
  assert.ok(existsSync(MINIBROWSER), `${MINIBROWSER} is missing: make setup-webkit installs it`);
  const display = freeDisplay();
  xvfb = spawn("Xvfb", [`:${display}`, "-screen", "0", "1024x768x24", "-nolisten", "tcp"], { stdio: "ignore" });
  await until(() => existsSync(`/tmp/.X11-unix/X${display}`), 10_000, `Xvfb :${display}`);
  const port = await freePort();
  driver = spawn("WebKitWebDriver", [`--port=${port}`, "--host=127.0.0.1"], {
    env: { ...process.env, DISPLAY: `:${display}` },
    stdio: "ignore",
  });
  driverUrl = `http://127.0.0.1:${port}`;
  await until(async () => (await wd("GET", "/status")).ready, 10_000, "WebKitWebDriver");
  server = await serve({ port: 0, tests: true });
  // The same model with one byte of its blob flipped: the manifest's SHA-256 no longer matches.
  corruptDir = mkdtempSync(join(tmpdir(), "nestrank-corrupt-"));
  for (const f of readdirSync(new URL("out/shop-model/", root))) {
    copyFileSync(new URL(`out/shop-model/${f}`, root), join(corruptDir, f));
  }
  const blobPath = join(corruptDir, manifest.file);
  const bytes = readFileSync(blobPath);
  bytes[bytes.length >> 1] ^= 0xff;
  writeFileSync(blobPath, bytes);
  corruptServer = await serve({ port: 0, model: corruptDir });
});

after(async () => {
  await server?.close();
  await corruptServer?.close();
  driver?.kill();
  xvfb?.kill();
  if (corruptDir) rmSync(corruptDir, { recursive: true, force: true });
});


test("WebKit: taps move a brand up after a reload, with reasons and the model id shown", async () => {
  const s = await newSession();
  try {
    const first = await s.open(server.url);
    assert.equal(first.length, defaultOrder.length);
    assert.equal(await s.run('return document.getElementById("model-id").textContent'), manifest.model_id);
    assert.match(await s.run('return document.getElementById("rerank-ms").textContent'), /^\d+\.\d\d$/);
    // Either build of the core may run here; the page names which.
    const simd = await s.run("return window.nestrank.simd");
    assert.equal(typeof simd, "boolean");
    console.log(`WebKitGTK runs the ${simd ? "SIMD" : "scalar"} build of the core`);

    // The brand furthest down the page: tap four of its items from the lower
    // half, and add one to the cart.
    const { brand, before, tapped } = brandToBrowse(first);
    assert.equal(tapped.length, 4);
    for (const id of tapped) await s.click(`#specials > [data-item-id="${id}"] .title`);
    await s.click(`#specials > [data-item-id="${tapped[0]}"] [data-action="cart"]`);
    const stored = await s.run('return localStorage.getItem("nestrank:signals")');
    assert.ok(stored && stored.length > 10, "signals are kept in localStorage");
    assert.ok(await s.run('return !document.getElementById("similar").hidden'), "the similar strip shows after a tap");

    const after = await s.open(server.url, true);
    const moved = meanPosition(after, brand);
    console.log(`WebKit: brand ${brand}: mean position ${before.toFixed(1)} -> ${moved.toFixed(1)} of ${after.length}`);
    assert.ok(moved < before - 50, `brand ${brand} moved up: ${before.toFixed(1)} -> ${moved.toFixed(1)}`);
    for (const id of tapped) assert.ok(after.indexOf(id) < 20, `tapped ${id} is in the top 20 (at ${after.indexOf(id)})`);
    assert.deepEqual([...after].sort(), [...defaultOrder].sort(), "a permutation of the specials");
    const reasons = await s.run('return [...document.querySelectorAll("#specials > * .reason")].slice(0, 20).map((r) => r.textContent)');
    assert.ok(reasons.some((r) => r.startsWith("because you viewed ")), `reasons: ${reasons.join(" | ")}`);
    // Not checked here: that a reload takes the blob from the Cache API. In
    // WebKitGTK's automation session the Cache API is empty after a reload
    // (localStorage is kept), so the blob is downloaded again; Chromium's
    // test checks it.
  } finally {
    await s.close();
  }
});

test("WebKit: a corrupt blob leaves the shop's own order, and the page keeps working", async () => {
  const s = await newSession();
  try {
    const order = await s.open(corruptServer.url);
    assert.deepEqual(order, defaultOrder, "the default order");
    assert.equal(await s.run('return document.getElementById("model-id").textContent'), "none");
    assert.equal(await s.run('return document.getElementById("status").textContent'), "Shop's picks");
    // Taps are still recorded for the next visit.
    await s.click(`#specials > [data-item-id="${defaultOrder[3]}"] .title`);
    const stored = await s.run('return localStorage.getItem("nestrank:signals")');
    assert.ok(stored && stored.length > 10, "the tap is kept in localStorage");
  } finally {
    await s.close();
  }
});

test("WebKit: a signed-in family's nightly profile orders a new phone's page", async () => {
  const s = await newSession();
  try {
    await s.go(server.url);
    await s.run("localStorage.clear()"); // a new phone: no signals, no saved profile
    const newcomer = await s.open(server.url);
    assert.equal(await s.run("return window.nestrank.history"), false);
    const order = await s.open(`${server.url}?user=f0`);
    assert.equal(await s.run("return window.nestrank.history"), true, "the embedding ranked");
    assert.match(await s.run('return document.getElementById("status").textContent'), /your history/);
    assert.notDeepEqual(order.slice(0, 10), newcomer.slice(0, 10));
    assert.deepEqual([...order].sort(), [...defaultOrder].sort(), "a permutation of the specials");
  } finally {
    await s.close();
  }
});

// The golden page once, in a new session: its results, or the error it caught.
async function goldenPage() {
  const s = await newSession();
  try {
    await s.go(`${server.url}tests/golden/index.html`);
    return await until(() => s.run("return window.goldenResults"), 30_000, "the golden page");
  } finally {
    await s.close();
  }
}

// One CI run (stop 34) saw WebKitGTK 2.50.6 trap with "RuntimeError: Out of
// bounds memory access" inside recommender_fromBytes on this page, while the
// four WebKit tests before it had loaded the same module and a larger blob.
// About 45 runs here, 4,000 decodes in one page, CPU load and address-space
// limits did not repeat it, and the same module decodes the same bytes in
// Node, Bun, Chromium and workerd. So a wasm trap gets one more page load in
// a fresh session, and the trap is printed; a second trap, or any other
// error or difference, fails the test.
test("WebKit: the golden v4 cases (profiles, rules, similar) equal the native core's", async (t) => {
  const expected = JSON.parse(readFileSync(new URL("tests/data/golden-v4-expected.json", root), "utf8"));
  let actual = await goldenPage();
  if (actual?.name === "RuntimeError") {
    t.diagnostic(`WebKit trapped on the golden page; loading it once more: ${JSON.stringify(actual)}`);
    actual = await goldenPage();
  }
  assert.ok(Array.isArray(actual), JSON.stringify(actual));
  assert.deepEqual(goldenDifferences(actual, expected.results), []);
});
