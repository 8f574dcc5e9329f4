// The edge worker in the real Workers runtime (workerd via miniflare@4) on
// 127.0.0.1: two visitors' cookies give two different orders, each equal to
// the native core's (`model-builder rerank`) for the same signals and time;
// the HTML page is rewritten to the same order; every bad cookie gives 200
// and the default order; a corrupt or missing blob gives the default order
// and `x-nestrank-model: none`.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync, mkdtempSync } from "node:fs";
import { createHash } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Miniflare } from "miniflare";
import { workerOptions, repoRoot } from "../scripts/config.mjs";
import { encodeSignals } from "../../pkg/node.js";

const sample = new URL("../sample/", import.meta.url);
const specials = JSON.parse(readFileSync(new URL("specials.json", sample), "utf8"));
const defaultOrder = specials.items.map((s) => s.id);
const brandItems = (brand) => specials.items.filter((s) => s.brand === brand).map((s) => s.id);
const NOW = Date.parse(specials.date + "T18:00:00Z") / 1000;
const builder = join(repoRoot, "target/demo/builder/model-builder");
const workDir = mkdtempSync(join(tmpdir(), "nestrank-edge-"));
const candidatesFile = join(workDir, "candidates.txt");
writeFileSync(candidatesFile, defaultOrder.join("\n") + "\n");

function nativeOrder(cookie) {
  const out = execFileSync(builder, ["rerank", "--model", new URL("model.nrk", sample).pathname,
    "--candidates", candidatesFile, "--signals", cookie, "--now", String(NOW)], { encoding: "utf8" });
  return JSON.parse(out).items;
}

const visitorA = encodeSignals([
  ...brandItems("Tinytrek").slice(0, 4).map((item, k) => ({ item, event: "view", ts: NOW - 3600 + 60 * k })),
]);
const visitorB = encodeSignals([
  ...brandItems("Nestling").slice(0, 3).map((item, k) => ({ item, event: "view", ts: NOW - 7200 + 60 * k })),
  { item: brandItems("Nestling")[0], event: "cart", ts: NOW - 600 },
]);

// What the core keeps or drops on purpose, which the worker must not decide
// for itself: a purchase from the future past the core's slack (dropped;
// the order differs if it is kept), a signal on an id the model does not
// know, and a repeated view.
const visitorC = encodeSignals([
  { item: "no-such-item", event: "cart", ts: NOW - 900 },
  ...brandItems("Tinytrek").slice(0, 2).map((item, k) => ({ item, event: "view", ts: NOW - 1800 + 60 * k })),
  { item: brandItems("Tinytrek")[0], event: "view", ts: NOW - 1700 },
  { item: brandItems("Nestling")[1], event: "purchase", ts: NOW + 3 * 86400 },
]);

let mf, url;
before(async () => {
  mf = new Miniflare(workerOptions({ trustNow: true }));
  url = await mf.ready;
});
after(async () => {
  await mf?.dispose();
});

async function get(base, path, cookie) {
  const headers = { "x-nestrank-now": String(NOW) };
  if (cookie !== undefined) headers.cookie = cookie;
  const res = await fetch(new URL(path, base), { headers });
  return { res, body: await res.text() };
}

test("two visitors' cookies: two orders, each the native core's", async () => {
  const orders = [];
  for (const cookie of [visitorA, visitorB]) {
    const { res, body } = await get(url, "/specials", `theme=dark; nr_signals=${cookie}`);
    assert.equal(res.status, 200);
    const json = JSON.parse(body);
    assert.equal(json.personalized, true);
    assert.equal(json.model, res.headers.get("x-nestrank-model"));
    assert.match(json.model, /^[0-9a-f]{16}$/);
    assert.equal(res.headers.get("cache-control"), "private, max-age=0");
    assert.equal(res.headers.get("vary"), "Cookie");
    const order = json.items.map((i) => i.id);
    assert.deepEqual(order, nativeOrder(cookie), "the worker's order is the native core's");
    assert.deepEqual([...order].sort(), [...defaultOrder].sort(), "a permutation of the specials");
    assert.ok(typeof json.items[0].title === "string" && typeof json.items[0].reason === "string");
    orders.push(order);
  }
  assert.notDeepEqual(orders[0].slice(0, 10), orders[1].slice(0, 10));
  assert.notDeepEqual(orders[0], defaultOrder);
});

test("unknown ids, a future signal and a repeat: the worker orders them as the core does", async () => {
  const { res, body } = await get(url, "/specials", `nr_signals=${visitorC}`);
  assert.equal(res.status, 200);
  const json = JSON.parse(body);
  assert.equal(json.personalized, true);
  assert.deepEqual(json.items.map((i) => i.id), nativeOrder(visitorC));
});

test("the HTML page is rewritten to the same order, the rest of it intact", async () => {
  const { res, body } = await get(url, "/", `nr_signals=${visitorA}`);
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("cache-control"), "private, max-age=0");
  const order = [...body.matchAll(/data-item-id="([^"]+)"/g)].map((m) => m[1]);
  assert.deepEqual(order, nativeOrder(visitorA));
  assert.match(body, /<code id="model-id">[0-9a-f]{16}<\/code>/);
  assert.match(body, /<\/ol>\n<\/body>/);
  const plain = await get(url, "/");
  assert.equal(plain.body, readFileSync(new URL("index.html", sample), "utf8").replace(">none</code>", `>${res.headers.get("x-nestrank-model")}</code>`));
  assert.equal(plain.res.headers.get("cache-control"), "public, max-age=300", "the default page may be cached");
});

const good = visitorA;
const raw = Buffer.from(good, "base64url");
const withVersion = Buffer.from(raw);
withVersion[0] = 2;
const flipped = good.slice(0, 20) + (good[20] === "A" ? "B" : "A") + good.slice(21);
const BAD_COOKIES = [
  ["no cookie header", undefined],
  ["empty value", "nr_signals="],
  ["garbage", "nr_signals=%%%not-base64%%%"],
  ["truncated", `nr_signals=${good.slice(0, good.length - 7)}`],
  ["wrong version", `nr_signals=${withVersion.toString("base64url")}`],
  ["flipped character (checksum)", `nr_signals=${flipped}`],
  ["10 KB", `nr_signals=${"A".repeat(10_000)}`],
  ["unknown items", `nr_signals=${encodeSignals([{ item: "no-such-item", event: "cart", ts: NOW - 60 }, { item: "p00000", event: "view", ts: NOW - 30 }])}`],
  ["future timestamps", `nr_signals=${encodeSignals(brandItems("Tinytrek").slice(0, 4).map((item) => ({ item, event: "cart", ts: NOW + 86400 })))}`],
  ["JSON instead of the codec", `nr_signals=${encodeURIComponent(JSON.stringify([{ item: "p13055", event: "view" }]))}`],
  ["base64 padding", "nr_signals=AQ=="],
  ["Latin-1 bytes", "nr_signals=\u00e9\u00e8\u00ff"],
  ["another cookie only", "nr_signal=" + good],
  ["first of two is garbage", `nr_signals=xyz; nr_signals=${good}`],
  ["empty signal list", `nr_signals=${encodeSignals([])}`],
];

test(`${BAD_COOKIES.length} bad cookies: 200 and the default order, never a 500`, async () => {
  for (const [what, cookie] of BAD_COOKIES) {
    for (const path of ["/specials", "/"]) {
      const { res, body } = await get(url, path, cookie);
      assert.equal(res.status, 200, `${what} ${path}`);
      assert.notEqual(res.headers.get("x-nestrank"), "personalized", `${what} ${path}`);
      const order = path === "/specials" ? JSON.parse(body).items.map((i) => i.id) : [...body.matchAll(/data-item-id="([^"]+)"/g)].map((m) => m[1]);
      assert.deepEqual(order, defaultOrder, `${what} ${path}: the default order`);
      if (path === "/specials") assert.equal(JSON.parse(body).personalized, false, what);
    }
  }
});

test("other paths and methods", async () => {
  assert.equal((await fetch(new URL("/nope", url))).status, 404);
  assert.equal((await fetch(new URL("/specials", url), { method: "POST", body: "x" })).status, 405);
});

async function withKv(put, check) {
  const kvmf = new Miniflare(workerOptions({ kv: true, trustNow: true }));
  try {
    const base = await kvmf.ready;
    const kv = await kvmf.getKVNamespace("MODELS");
    await put(kv);
    await check(base);
  } finally {
    await kvmf.dispose();
  }
}

const blob = readFileSync(new URL("model.nrk", sample));
const manifestOf = (bytes, file = "model-x.nrk") => JSON.stringify({ file, bytes: bytes.length, sha256: createHash("sha256").update(bytes).digest("hex") });

test("a model published to KV is verified and used", async () => {
  await withKv(async (kv) => {
    await kv.put("manifest.json", manifestOf(blob));
    await kv.put("model-x.nrk", blob);
  }, async (base) => {
    const { res, body } = await get(base, "/specials", `nr_signals=${visitorB}`);
    assert.equal(res.status, 200);
    assert.equal(JSON.parse(body).personalized, true);
    assert.deepEqual(JSON.parse(body).items.map((i) => i.id), nativeOrder(visitorB));
  });
});

test("a corrupt, mismatched or missing blob: default order, x-nestrank-model none, the error in a header", async () => {
  const corrupt = Buffer.from(blob);
  corrupt[corrupt.length >> 1] ^= 0xff;
  const cases = [
    ["corrupt (sha matches, decode fails)", async (kv) => {
      await kv.put("manifest.json", manifestOf(corrupt));
      await kv.put("model-x.nrk", corrupt);
    }, /checksum mismatch/],
    ["sha256 mismatch", async (kv) => {
      await kv.put("manifest.json", manifestOf(blob));
      await kv.put("model-x.nrk", corrupt);
    }, /sha256 .* does not match/],
    ["missing blob", async (kv) => kv.put("manifest.json", manifestOf(blob)), /model-x\.nrk is missing/],
    ["no manifest", async () => {}, /no manifest\.json/],
  ];
  for (const [what, put, error] of cases) {
    await withKv(put, async (base) => {
      for (const path of ["/specials", "/"]) {
        const { res, body } = await get(base, path, `nr_signals=${visitorA}`);
        assert.equal(res.status, 200, what);
        assert.equal(res.headers.get("x-nestrank-model"), "none", what);
        assert.match(res.headers.get("x-nestrank-error"), error, what);
        const order = path === "/specials" ? JSON.parse(body).items.map((i) => i.id) : [...body.matchAll(/data-item-id="([^"]+)"/g)].map((m) => m[1]);
        assert.deepEqual(order, defaultOrder, `${what} ${path}`);
        if (path === "/specials") assert.equal(JSON.parse(body).model, null);
      }
    });
  }
});

test("operations' rules and sold-out list in KV shape both pages; a bad file is reported and changes nothing", async () => {
  const pin = defaultOrder[defaultOrder.length - 1];
  const gone = nativeOrder(visitorB)[0];
  const publish = async (kv) => {
    await kv.put("manifest.json", manifestOf(blob));
    await kv.put("model-x.nrk", blob);
  };
  await withKv(async (kv) => {
    await publish(kv);
    await kv.put("rules.json", JSON.stringify({ pins: [{ item: pin, slot: 1 }] }));
    await kv.put("sold-out.json", JSON.stringify([gone]));
  }, async (base) => {
    const { res, body } = await get(base, "/specials", `nr_signals=${visitorB}`);
    assert.equal(res.headers.get("x-nestrank-error"), null);
    const personal = JSON.parse(body).items;
    assert.equal(personal[0].id, pin, "pinned first");
    assert.match(personal[0].reason, /pinned to slot 1/);
    assert.ok(!personal.some((i) => i.id === gone), "sold out");
    assert.equal(personal.length, defaultOrder.length - 1);
    // The default page keeps the shop's order without the sold-out item.
    const plain = JSON.parse((await get(base, "/specials")).body).items.map((i) => i.id);
    assert.deepEqual(plain, defaultOrder.filter((id) => id !== gone));
    const html = (await get(base, "/")).body;
    assert.deepEqual([...html.matchAll(/data-item-id="([^"]+)"/g)].map((m) => m[1]), plain);
  });
  for (const [file, text, error] of [
    ["rules.json", JSON.stringify({ pins: [{ item: pin, slot: 0 }] }), /rules: pins\[0\]: slot is 1-based/],
    ["rules.json", "{not json", /rules: the text is not JSON/],
    ["sold-out.json", JSON.stringify({ ids: [gone] }), /sold-out\.json must be an array/],
  ]) {
    await withKv(async (kv) => {
      await publish(kv);
      await kv.put(file, text);
    }, async (base) => {
      const { res, body } = await get(base, "/specials", `nr_signals=${visitorB}`);
      assert.equal(res.status, 200, file);
      assert.match(res.headers.get("x-nestrank-error"), error, file);
      assert.deepEqual(JSON.parse(body).items.map((i) => i.id), nativeOrder(visitorB), `${file}: the blob's order`);
    });
  }
});

test("an experiment in KV: sticky variants by the nr_vid cookie, the control gets the shop's order, a bad one is reported", async () => {
  const { Recommender } = await import("../../pkg/node.js");
  const experiment = {
    name: "edge-launch",
    variants: [{ name: "control", share: 50, order: "shop" }, { name: "nestrank", share: 50 }],
  };
  // The visitors each variant gets, by the package's own assignment: the
  // page and the worker run the same core.
  const rec = Recommender.fromBytes(blob);
  rec.setExperiment(experiment);
  const visitorIn = (name) => {
    for (let k = 0; ; k++) if (rec.setVisitor(`visitor-${String(k).padStart(4, "0")}`) === name) return `visitor-${String(k).padStart(4, "0")}`;
  };
  const [inControl, inNestrank] = [visitorIn("control"), visitorIn("nestrank")];
  rec.free();
  const publish = async (kv) => {
    await kv.put("manifest.json", manifestOf(blob));
    await kv.put("model-x.nrk", blob);
    await kv.put("experiment.json", JSON.stringify(experiment));
  };
  await withKv(publish, async (base) => {
    const control = await get(base, "/specials", `nr_signals=${visitorB}; nr_vid=${inControl}`);
    assert.equal(control.res.headers.get("x-nestrank-variant"), "control");
    assert.equal(control.res.headers.get("x-nestrank"), "control");
    assert.equal(control.res.headers.get("set-cookie"), null, "a known visitor keeps its id");
    assert.deepEqual(JSON.parse(control.body).items.map((i) => i.id), defaultOrder, "the shop's order");
    const html = (await get(base, "/", `nr_signals=${visitorB}; nr_vid=${inControl}`)).body;
    assert.deepEqual([...html.matchAll(/data-item-id="([^"]+)"/g)].map((m) => m[1]), defaultOrder);
    for (let k = 0; k < 2; k++) {
      const treated = await get(base, "/specials", `nr_signals=${visitorB}; nr_vid=${inNestrank}`);
      assert.equal(treated.res.headers.get("x-nestrank-variant"), "nestrank", "sticky");
      assert.deepEqual(JSON.parse(treated.body).items.map((i) => i.id), nativeOrder(visitorB), "nestrank's order");
    }
    // A first visit: the worker draws the id and sets it.
    const first = await get(base, "/specials", `nr_signals=${visitorB}`);
    const set = first.res.headers.get("set-cookie");
    assert.match(set, /^nr_vid=[0-9a-f-]{36}; Path=\/; Max-Age=31536000; SameSite=Lax$/);
    assert.equal(first.res.headers.get("cache-control"), "private, max-age=0");
    const id = set.slice("nr_vid=".length, set.indexOf(";"));
    const again = await get(base, "/specials", `nr_signals=${visitorB}; nr_vid=${id}`);
    assert.equal(again.res.headers.get("x-nestrank-variant"), first.res.headers.get("x-nestrank-variant"));
  });
  await withKv(async (kv) => {
    await kv.put("manifest.json", manifestOf(blob));
    await kv.put("model-x.nrk", blob);
    await kv.put("experiment.json", JSON.stringify({ ...experiment, variants: [experiment.variants[0]] }));
  }, async (base) => {
    const { res, body } = await get(base, "/specials", `nr_signals=${visitorB}; nr_vid=${inControl}`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get("x-nestrank-error"), /experiment: variants: the shares add up to 50%/);
    assert.equal(res.headers.get("x-nestrank-variant"), null, "no experiment runs");
    assert.deepEqual(JSON.parse(body).items.map((i) => i.id), nativeOrder(visitorB));
  });
});
