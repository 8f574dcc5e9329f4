// The bad-input table of the README, JS side: every wrong argument to the
// package's API gives an Error with a name and a message (or the documented
// tolerant behaviour), never a wasm panic, and the module still works after
// each one.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Recommender, encodeSignals, decodeSignals } from "../../pkg/node.js";

const blob = readFileSync(new URL("../data/golden-v1.nrk", import.meta.url));
const cases = JSON.parse(readFileSync(new URL("../data/golden-cases.json", import.meta.url), "utf8"));
const expected = JSON.parse(readFileSync(new URL("../data/golden-expected.json", import.meta.url), "utf8"));
const rec = Recommender.fromBytes(blob);
const c = cases.cases[1];
const cand = cases.candidates;

// The module still gives the golden answer.
function stillWorks(what) {
  const out = rec.rerank(cand, c.signals, { now: c.now, explain: true });
  assert.deepEqual(out.items, expected.results[1].items, `still works after ${what}`);
  assert.equal(Recommender.fromBytes(blob).modelId, expected.model_id);
}

const ARG = "NestrankArgumentError";
const DECODE = "NestrankDecodeError";
const SIGNALS = "NestrankSignalsError";
const truncated = blob.subarray(0, 1000);
const flipped = Buffer.from(blob);
flipped[5000] ^= 1;

// [what, call, error name, message pattern]
const THROWS = [
  ["fromBytes(undefined)", () => Recommender.fromBytes(undefined), ARG, /Uint8Array or ArrayBuffer/],
  ["fromBytes(42)", () => Recommender.fromBytes(42), ARG, /Uint8Array or ArrayBuffer/],
  ["fromBytes('NRNK')", () => Recommender.fromBytes("NRNK"), ARG, /Uint8Array or ArrayBuffer/],
  ["fromBytes([1,2,3])", () => Recommender.fromBytes([1, 2, 3]), ARG, /Uint8Array or ArrayBuffer/],
  ["fromBytes(empty)", () => Recommender.fromBytes(new Uint8Array()), DECODE, /invalid model blob: .*truncated/i],
  ["fromBytes(truncated)", () => Recommender.fromBytes(truncated), DECODE, /invalid model blob/],
  ["fromBytes(flipped byte)", () => Recommender.fromBytes(flipped), DECODE, /checksum mismatch/],
  ["fromBytes(a PNG)", () => Recommender.fromBytes(Uint8Array.from([0x89, 0x50, 0x4e, 0x47, 13, 10, 26, 10, ...new Array(40).fill(0)])), DECODE, /magic/],
  ["rerank(candidates not an array)", () => rec.rerank("a,b", [], {}), ARG, /candidateIds must be an array/],
  ["rerank(candidates with a number)", () => rec.rerank(["a", 7], [], {}), ARG, /candidateIds\[1\] is not a string/],
  ["rerank(candidate with U+001F)", () => rec.rerank(["a\u001fb"], [], {}), ARG, /U\+001F/],
  ["rerank(second candidate with U+001F)", () => rec.rerank(["a", "b", "c\u001f"], [], {}), ARG, /candidateIds\[2\] contains U\+001F/],
  ["rerank(signal item with U+001F)", () => rec.rerank(cand, [{ item: "a", event: "view", ts: 1 }, { item: "\u001f", event: "view", ts: 1 }], {}), ARG, /signals\.item of signals\[1\] contains U\+001F/],
  ["setSoldOut(id with U+001F)", () => rec.setSoldOut(["a", "b\u001f"]), ARG, /ids\[1\] contains U\+001F/],
  ["rerank(signals an object)", () => rec.rerank(cand, { item: "a" }, {}), ARG, /signals must be an array/],
  ["rerank(signal null)", () => rec.rerank(cand, [null], {}), ARG, /signals\[0\]/],
  ["rerank(signal item a number)", () => rec.rerank(cand, [{ item: 5, event: "view", ts: 1 }], {}), ARG, /signals\[0\]/],
  ["rerank(options.limit a string)", () => rec.rerank(cand, [], { limit: "ten" }), ARG, /options must be/],
  ["rerank(options a number)", () => rec.rerank(cand, [], 5), ARG, /options must be/],
  ["rerank(now NaN)", () => rec.rerank(cand, [], { now: NaN }), ARG, /now/],
  ["indexOf(42)", () => rec.indexOf(42), ARG, /ids must be an array/],
  ["rerankIndices(unequal lengths)", () => rec.rerankIndices(new Uint32Array([0]), new Uint32Array([0, 1]), new Uint8Array([0]), new Float64Array([1]), 2), ARG, /equal lengths/],
  ["rerankIndices(now Infinity)", () => rec.rerankIndices(new Uint32Array([0]), new Uint32Array(), new Uint8Array(), new Float64Array(), Infinity), ARG, /now/],
  ["encodeSignals('x')", () => encodeSignals("x"), ARG, /signals must be an array/],
  ["encodeSignals(bad event)", () => encodeSignals([{ item: "a", event: "like", ts: 1 }]), ARG, /signals\[0\]\.event/],
  ["encodeSignals(ts NaN)", () => encodeSignals([{ item: "a", event: "view", ts: NaN }]), ARG, /signals\[0\]\.ts/],
  ["encodeSignals(ts before 1970)", () => encodeSignals([{ item: "a", event: "view", ts: -5 }]), ARG, /outside 1970..2100/],
  ["encodeSignals(empty id)", () => encodeSignals([{ item: "", event: "view", ts: 1 }]), ARG, /item id 0 is invalid: it is empty/],
  ["encodeSignals(300-byte id)", () => encodeSignals([{ item: "x".repeat(300), event: "view", ts: 1 }]), ARG, /longer than 256 bytes/],
  ["decodeSignals(undefined)", () => decodeSignals(undefined), ARG, /expects a string/],
  ["decodeSignals('')", () => decodeSignals(""), SIGNALS, /empty/],
  ["decodeSignals('not base64!')", () => decodeSignals("not base64!"), SIGNALS, /base64url at position 3/],
  ["decodeSignals(100 KB)", () => decodeSignals("A".repeat(100_000)), SIGNALS, /more than the 98304 allowed/],
];

test(`${THROWS.length} bad JS inputs: a named Error each, and the module still works`, () => {
  for (const [what, call, name, message] of THROWS) {
    assert.throws(call, (e) => {
      assert.ok(e instanceof Error, `${what}: an Error`);
      assert.equal(e.name, name, `${what}: ${e.name}: ${e.message}`);
      assert.match(e.message, message, what);
      assert.doesNotMatch(e.message, /unreachable|panicked/, `${what}: not a panic`);
      return true;
    });
    stillWorks(what);
  }
});

// Tolerated inputs, as documented: the answer is still a full ranking.
const TOLERATED = [
  ["unknown candidate ids", () => rec.rerank(["nope-1", ...cand, "nope-2"], c.signals, { now: c.now }).items.length === cand.length + 2],
  ["unknown event in a signal (skipped)", () => rec.rerank(cand, [{ item: cand[0], event: "like", ts: c.now - 5 }], { now: c.now }).items.length === cand.length],
  ["NaN time in a signal (skipped)", () => rec.rerank(cand, [{ item: cand[0], event: "view", ts: NaN }], { now: c.now }).items.length === cand.length],
  ["signal from the future (ignored)", () => {
    const base = rec.rerank(cand, [], { now: c.now }).items;
    return rec.rerank(cand, [{ item: cand.at(-2), event: "purchase", ts: c.now + 86400 }], { now: c.now }).items.join() === base.join();
  }],
  ["duplicate candidates", () => rec.rerank([cand[0], cand[0]], [], { now: c.now }).items.length === 2],
  ["limit larger than the list", () => rec.rerank(cand, [], { now: c.now, limit: 1e6 }).items.length === cand.length],
  ["empty candidates", () => rec.rerank([], c.signals, { now: c.now }).items.length === 0],
  ["rerankIndices with indices past the model", () => rec.rerankIndices(new Uint32Array([0, 4e9, 0xffffffff]), new Uint32Array(), new Uint8Array(), new Float64Array(), 1e9).length === 3],
];

test(`${TOLERATED.length} tolerated JS inputs give a full ranking`, () => {
  for (const [what, check] of TOLERATED) {
    assert.equal(check(), true, what);
    stillWorks(what);
  }
});

// Ids cross into wasm as UTF-8 (a TextEncoder on the JS side): ids outside
// ASCII, of 2 to 4 bytes, and a lone surrogate neither shift the ids after
// them nor change the order of the rest.
test("ids outside ASCII cross intact: the ids after them are found, the order of the rest holds", () => {
  const odd = ["é", "婴儿车", "👶", "\uD800"];
  const known = rec.indexOf([cand[0], cand[1]]);
  assert.ok(known.every((k) => k !== 0xffffffff), "two known ids");
  assert.deepEqual([...rec.indexOf([...odd, cand[0], "👶", cand[1]])], [...odd.map(() => 0xffffffff), known[0], 0xffffffff, known[1]]);
  const base = rec.rerank(cand, c.signals, { now: c.now, explain: true });
  const noise = odd.map((item) => ({ item, event: "view", ts: c.now - 60 }));
  const out = rec.rerank([...odd, ...cand], [...noise, ...c.signals, ...noise], { now: c.now, explain: true });
  assert.deepEqual(out.items.slice().sort(), [...odd, ...cand].sort(), "every candidate, as given");
  assert.deepEqual(out.items.filter((id) => !odd.includes(id)), base.items);
});
