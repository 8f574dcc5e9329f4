// loadModel under Node against a real HTTP server on 127.0.0.1: the blob is
// fetched, checked against the manifest's size and sha256, decoded, cached,
// and a later bad blob falls back to the last good one. Node has no Cache
// API, so the package's in-memory cache is the one under test here; the
// page's Cache API path is exercised by tests/e2e in Chromium.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { loadModel, Recommender } from "../../pkg/node.js";

const blob = readFileSync(new URL("../data/golden-v1.nrk", import.meta.url));
const sha = (b) => createHash("sha256").update(b).digest("hex");
const modelId = Recommender.fromBytes(blob).modelId;
const corrupt = Buffer.from(blob);
corrupt[100] ^= 0xff;

// path -> [status, body]; the tests change it between calls.
let routes = {};
let requests = [];
let server;
let base;

before(async () => {
  server = createServer((req, res) => {
    requests.push(req.url);
    const [status, body] = routes[req.url] ?? [404, "not found"];
    res.writeHead(status);
    res.end(body);
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  base = `http://127.0.0.1:${server.address().port}`;
});
after(() => server.close());

function publish(dir, bytes, manifestPatch = {}) {
  const file = `model-${sha(bytes).slice(0, 16)}.nrk`;
  const manifest = { file, sha256: sha(bytes), bytes: bytes.length, model_id: modelId, ...manifestPatch };
  routes[`/${dir}/manifest.json`] = [200, JSON.stringify(manifest)];
  routes[`/${dir}/${file}`] = [200, bytes];
  return `${base}/${dir}/manifest.json`;
}

test("loads, verifies and then serves the blob from the cache", async () => {
  routes = {};
  const url = publish("a", blob);
  const first = await loadModel(url);
  assert.equal(first.source, "network");
  assert.equal(first.recommender.modelId, modelId);
  assert.equal(await first.stored, undefined, "the cache writes finish after the model is handed over");
  requests = [];
  const second = await loadModel(url);
  assert.equal(second.source, "cache");
  assert.deepEqual(requests, ["/a/manifest.json"], "a reload fetches only the manifest");
});

test("a reload uses the last good blob only while the manifest names it", async () => {
  routes = {};
  const url = publish("n", blob);
  assert.equal((await loadModel(url)).source, "network");
  assert.equal((await loadModel(url)).source, "cache");
  // The next night publishes another model: it is downloaded, not the
  // last good one (read while the manifest was asked for) used.
  const next = readFileSync(new URL("../data/golden-v2.nrk", import.meta.url));
  const nextId = Recommender.fromBytes(next).modelId;
  assert.notEqual(nextId, modelId);
  publish("n", next, { model_id: nextId });
  const fresh = await loadModel(url);
  assert.equal(fresh.source, "network");
  assert.equal(fresh.recommender.modelId, nextId);
  await fresh.stored;
  // And it is the last good one from then on.
  requests = [];
  const again = await loadModel(url);
  assert.equal(again.source, "cache");
  assert.equal(again.recommender.modelId, nextId);
  assert.deepEqual(requests, ["/n/manifest.json"]);
});

test("a preloaded manifest is asked for again unless the host makes it revalidate", async () => {
  routes = {};
  const url = publish("p", blob);
  // What a stale copy would name: yesterday's blob, gone from the host.
  const staleManifest = JSON.stringify({ file: "model-0000000000000000.nrk", sha256: "e".repeat(64), bytes: 5 });
  // The page preloaded the manifest; the response handed over came from the
  // HTTP cache, and its Cache-Control let it be stored for an hour.
  globalThis.document = { querySelectorAll: () => [{ href: url }] };
  const calls = [];
  const fetchFn = async (u, init) => {
    calls.push(init?.cache ?? "default");
    if (calls.length === 1) return new Response(staleManifest, { headers: { "cache-control": "public, max-age=3600" } });
    return fetch(u, init);
  };
  try {
    const out = await loadModel(url, { cache: false, fetch: fetchFn });
    assert.equal(out.source, "network");
    assert.equal(out.recommender.modelId, modelId);
    assert.deepEqual(calls.slice(0, 2), ["no-cache", "no-cache"], "the manifest is asked for again, past the cache");
    // Served with no-cache, the handed-over response was revalidated: used as is.
    calls.length = 0;
    const fresh = async (u, init) => {
      calls.push(init?.cache ?? "default");
      if (calls.length === 1) return new Response(routes["/p/manifest.json"][1], { headers: { "cache-control": "no-cache" } });
      return fetch(u, init);
    };
    assert.equal((await loadModel(url, { cache: false, fetch: fresh })).source, "network");
    assert.equal(calls.length, 2, "the manifest once, then the blob");
  } finally {
    delete globalThis.document;
  }
});

test("checksum and size mismatches are NestrankLoadErrors naming the blob", async () => {
  routes = {};
  const url = publish("b", blob, { sha256: "0".repeat(64) });
  await assert.rejects(loadModel(url, { cache: false }), {
    name: "NestrankLoadError",
    message: /model-[0-9a-f]{16}\.nrk: sha256 [0-9a-f]{64} does not match the manifest's 0{64}/,
  });
  const url2 = publish("c", blob, { bytes: blob.length + 1 });
  await assert.rejects(loadModel(url2, { cache: false }), { name: "NestrankLoadError", message: /bytes, the manifest says/ });
});

test("a blob whose sha matches but whose contents are corrupt fails to decode", async () => {
  routes = {};
  const url = publish("d", corrupt);
  await assert.rejects(loadModel(url, { cache: false }), { name: "NestrankLoadError", message: /checksum mismatch/ });
});

test("bad manifests and HTTP errors are NestrankLoadErrors", async () => {
  routes = { "/e/manifest.json": [200, "{not json"], "/f/manifest.json": [200, JSON.stringify({ file: "../x", sha256: "a", bytes: 1 })] };
  await assert.rejects(loadModel(`${base}/e/manifest.json`, { cache: false }), { name: "NestrankLoadError", message: /not JSON/ });
  await assert.rejects(loadModel(`${base}/f/manifest.json`, { cache: false }), { name: "NestrankLoadError", message: /plain file name/ });
  await assert.rejects(loadModel(`${base}/g/manifest.json`, { cache: false }), { name: "NestrankLoadError", message: /HTTP 404/ });
});

test("a new blob that fails to verify falls back to the last good one", async () => {
  routes = {};
  const good = publish("h", blob);
  assert.equal((await loadModel(good)).source, "network");
  // The next night's publish is broken: its sha256 does not match.
  const broken = publish("h", corrupt, { sha256: "f".repeat(64) });
  const warnings = [];
  const orig = console.warn;
  console.warn = (m) => warnings.push(m);
  try {
    const out = await loadModel(broken);
    assert.equal(out.source, "fallback");
    assert.equal(out.recommender.modelId, modelId);
    assert.match(out.error.message, /does not match the manifest/);
    assert.equal(warnings.length, 1);
  } finally {
    console.warn = orig;
  }
  // And with the server down entirely.
  routes = {};
  const out = await loadModel(good);
  assert.equal(out.source, "fallback");
});

test("the plain SHA-256 used where WebCrypto is missing agrees with node:crypto", async () => {
  const { sha256 } = await import("../../pkg/load.js");
  for (const n of [0, 1, 55, 56, 63, 64, 65, 1000, blob.length]) {
    const b = blob.subarray(0, n);
    assert.equal(Buffer.from(sha256(b)).toString("hex"), sha(b), `${n} bytes`);
  }
});
