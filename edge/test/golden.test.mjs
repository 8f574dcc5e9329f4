// The version 4 golden cases (profiles, rules, similar()) in the real
// Workers runtime (workerd via miniflare@4) equal the native core's
// recorded results: tests/golden/worker.js runs tests/golden/run.js.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Miniflare } from "miniflare";
import { repoRoot, workerOptions } from "../scripts/config.mjs";
import { goldenDifferences } from "../../tests/golden/run.js";

test("workerd: the golden v4 cases equal the native core's", async () => {
  const expected = JSON.parse(readFileSync(`${repoRoot}tests/data/golden-v4-expected.json`, "utf8"));
  const mf = new Miniflare(workerOptions({ script: "tests/golden/worker.js" }));
  try {
    const res = await mf.dispatchFetch("http://127.0.0.1/");
    assert.equal(res.status, 200);
    const actual = await res.json();
    assert.ok(Array.isArray(actual), JSON.stringify(actual));
    assert.deepEqual(goldenDifferences(actual, expected.results), []);
  } finally {
    await mf.dispose();
  }
});
