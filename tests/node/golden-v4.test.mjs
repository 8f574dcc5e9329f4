// The version 4 golden cases (profiles, rules, similar()) through the npm
// package equal the native core's recorded results: under Node (V8) and,
// run by `bun test`, under JavaScriptCore.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { loadNestrank } from "../../scripts/node-pkg.mjs";
import { runGolden, goldenDifferences } from "../golden/run.js";

const data = new URL("../data/", import.meta.url);
const spec = JSON.parse(readFileSync(new URL("golden-v4-cases.json", data), "utf8"));
const expected = JSON.parse(readFileSync(new URL("golden-v4-expected.json", data), "utf8"));

test("golden v4 cases: same orders, reasons, similar lists and scores (1e-6) as the native core", async () => {
  const nestrank = await loadNestrank();
  const blob = readFileSync(new URL(spec.blob, data));
  const profiles = spec.profiles.map((f) => readFileSync(new URL(f, data)));
  const actual = runGolden(nestrank, blob, profiles, spec);
  assert.equal(actual.length, 10);
  assert.deepEqual(goldenDifferences(actual, expected.results), []);
  // The comparison itself finds a change.
  const moved = structuredClone(actual);
  moved[1].scores[0] += 1e-5;
  [moved[2].items[0], moved[2].items[1]] = [moved[2].items[1], moved[2].items[0]];
  assert.equal(goldenDifferences(moved, expected.results).length, 2);
});
