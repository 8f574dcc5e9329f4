// The npm package under Node: the golden cases through the built pkg/
// equal the native core's recorded output (native == wasm), the typed API
// agrees, and bad input throws named errors.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { loadNestrank, fnv1a64 } from "../../scripts/node-pkg.mjs";

const data = new URL("../data/", import.meta.url);
const blob = readFileSync(new URL("golden-v1.nrk", data));
const cases = JSON.parse(readFileSync(new URL("golden-cases.json", data), "utf8"));
const expected = JSON.parse(readFileSync(new URL("golden-expected.json", data), "utf8"));
const { Recommender } = await loadNestrank();

test("golden cases: same order, reasons and scores (1e-6) as the native core", () => {
  const rec = Recommender.fromBytes(blob);
  assert.equal(rec.modelId, expected.model_id);
  assert.equal(rec.formatVersion, 1);
  assert.equal(rec.asOf, cases.as_of);
  cases.cases.forEach((c, k) => {
    const want = expected.results[k];
    const out = rec.rerank(cases.candidates, c.signals, { now: c.now, explain: true });
    assert.deepEqual(out.items, want.items, `order of ${c.name}`);
    assert.deepEqual(out.reasons, want.reasons, `reasons of ${c.name}`);
    assert.deepEqual(out.because, want.because, `because of ${c.name}`);
    assert.ok(out.scores instanceof Float32Array);
    want.scores.forEach((s, i) => assert.ok(Math.abs(out.scores[i] - s) <= 1e-6, `score ${i} of ${c.name}`));
  });
});

test("typed path: indices in, permutation out, same head as the string path", () => {
  const rec = Recommender.fromBytes(blob);
  const c = cases.cases[1];
  const idx = rec.indexOf(cases.candidates);
  assert.ok(idx instanceof Uint32Array);
  assert.equal(idx[idx.length - 1], 0xffffffff, "unknown id");
  const sigItems = rec.indexOf(c.signals.map((s) => s.item));
  const sigEvents = Uint8Array.from(c.signals.map((s) => ({ view: 0, fav: 1, cart: 2, purchase: 3 })[s.event]));
  const sigTs = Float64Array.from(c.signals.map((s) => s.ts));
  const order = rec.rerankIndices(idx, sigItems, sigEvents, sigTs, c.now);
  assert.ok(order instanceof Uint32Array);
  assert.deepEqual([...order].sort((a, b) => a - b), [...idx.keys()]);
  const head = [...order.slice(0, 10)].map((p) => cases.candidates[p]);
  assert.deepEqual(head, expected.results[1].items.slice(0, 10));
  const scores = rec.lastScores();
  assert.equal(scores.length, idx.length);
  assert.ok(Math.abs(scores[0] - expected.results[1].scores[0]) <= 1e-6);
});

test("bad blobs and arguments throw named errors; the module keeps working", () => {
  assert.throws(() => Recommender.fromBytes(new Uint8Array([1, 2, 3, 4, 5])), {
    name: "NestrankDecodeError",
    message: /not a nestrank blob/,
  });
  const flipped = Uint8Array.from(blob);
  flipped[flipped.length >> 1] ^= 0x10;
  assert.throws(() => Recommender.fromBytes(flipped), { name: "NestrankDecodeError", message: /checksum mismatch/ });
  assert.throws(() => Recommender.fromBytes({ length: 3 }), { name: "NestrankArgumentError" });
  const rec = Recommender.fromBytes(blob.buffer.slice(blob.byteOffset, blob.byteOffset + blob.length));
  assert.throws(() => rec.rerank("not-an-array", [], {}), { name: "NestrankArgumentError", message: /candidateIds/ });
  assert.throws(() => rec.rerank(["a"], [{ item: 1 }], {}), { name: "NestrankArgumentError", message: /signals/ });
  assert.throws(() => rec.rerankIndices(new Uint32Array(2), new Uint32Array(1), new Uint8Array(0), new Float64Array(1), 0), /equal lengths/);
  const out = rec.rerank(["x", "y"], [{ item: "y", event: "view", ts: 100 }], { now: 200 });
  assert.deepEqual(out.items, ["y", "x"]);
  assert.deepEqual(out.reasons, ["you viewed this", ""]);
  assert.equal(out.signalsUsed, 1, "a signal on a new candidate counts");
  // Which signals count is the core's rule (the edge worker reads this).
  const none = rec.rerank(["x"], [
    { item: "not-a-candidate", event: "cart", ts: 100 },
    { item: "x", event: "view", ts: 200 + 86_400 },
  ], { now: 200 });
  assert.equal(none.signalsUsed, 0);
});

test("the demo's FNV-1a 64 matches the reference values", () => {
  assert.equal(fnv1a64(""), 0xcbf29ce484222325n);
  assert.equal(fnv1a64("a"), 0xaf63dc4c8601ec8cn);
  assert.equal(fnv1a64("foobar"), 0x85944171f73967e8n);
});

test("experiments and exploration: setExperiment, setVisitor, variant, variantOrder and propensities", () => {
  const rec = Recommender.fromBytes(blob);
  const ids = cases.candidates;
  const experiment = { name: "pkg", variants: [{ name: "shop", share: 50, order: "shop" }, { name: "popular", share: 50, ranker: "popular" }] };
  assert.equal(rec.variant, undefined);
  rec.setExperiment(JSON.stringify(experiment));
  assert.equal(rec.variant, undefined, "no visitor, no variant");
  const seen = new Map();
  for (let k = 0; k < 40; k++) seen.set(rec.setVisitor(`v-${k}`), `v-${k}`);
  assert.deepEqual([...seen.keys()].sort(), ["popular", "shop"]);
  rec.setVisitor(seen.get("shop"));
  assert.equal(rec.variantOrder, "shop");
  assert.deepEqual(rec.rerank(ids, cases.cases[0].signals, { now: cases.cases[0].now }).items, ids, "the shop's order");
  rec.setVisitor(seen.get("popular"));
  assert.equal(rec.variant, "popular");
  assert.equal(rec.variantOrder, "nestrank");
  for (const [bad, message] of [
    [{ ...experiment, variants: [experiment.variants[0]] }, /^experiment: variants: the shares add up to 50%/],
    [{ ...experiment, colour: "red" }, /experiment: top level: unknown field `colour`/],
    [{ name: "x" }, /^experiment: variants is missing$/],
    [{ name: "x", variants: [{ name: "a", share: "100" }] }, /^experiment: variants\[0\]\.share must be a number$/],
    [{ name: "x", variants: [{ name: "a", share: 100, order: "theirs" }] }, /^experiment: variants\[0\]\.order: "theirs" is not "shop" or "nestrank"$/],
    [{ name: "x", variants: [{ name: "a", share: 100, rules: { pin: [] } }] }, /experiment: variants\[0\]\.rules: top level: unknown field `pin`/],
    ["{nope", /the text is not JSON/],
  ]) {
    assert.throws(() => rec.setExperiment(bad), (e) => e.name === "NestrankExperimentError" && message.test(e.message), String(message));
  }
  assert.equal(rec.variant, "popular", "the last good experiment stays");
  rec.setExperiment(null);
  assert.equal(rec.variant, undefined);
  // An exploration slot's item carries the probability it was drawn with.
  rec.setRules({ explore: { slots: [2] } });
  rec.setUserKey("someone");
  const out = rec.rerank(ids, [], { now: cases.cases[0].now, explain: true });
  assert.ok(out.propensities instanceof Float32Array);
  assert.ok(out.propensities[1] > 0 && out.propensities[1] < 1, `slot 2: ${out.propensities[1]}`);
  assert.ok([...out.propensities].every((p, k) => k === 1 || p === 1));
  assert.match(out.reasons[1], /new in the shop/);
  rec.free();
});
