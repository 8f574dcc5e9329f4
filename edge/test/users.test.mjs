// The families' nightly profiles at the edge (issue #20), in the real
// Workers runtime: `model-builder users` writes the edge table for the
// bundled model, the test uploads it to the KV namespace USERS, and a
// visitor's `nr_uid` cookie then finds its family. Its embedding orders
// the page even with no signals cookie, as the native core orders it with
// the same profile blob; an unknown visitor, a table for another model
// and a corrupt shard all give the signals-only order with status 200.
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
const modelPath = new URL("model.nrk", sample).pathname;
const specials = JSON.parse(readFileSync(new URL("specials.json", sample), "utf8"));
const defaultOrder = specials.items.map((s) => s.id);
const NOW = Date.parse(specials.date + "T18:00:00Z") / 1000;
const builder = join(repoRoot, "target/demo/builder/model-builder");
const work = mkdtempSync(join(tmpdir(), "nestrank-edge-users-"));
const candidates = join(work, "candidates.txt");
writeFileSync(candidates, defaultOrder.join("\n") + "\n");
const SALT = "5eed00112233445566778899aabbccdd";

function native(signals, profile) {
  const args = ["rerank", "--model", modelPath, "--candidates", candidates, "--signals", signals, "--now", String(NOW)];
  if (profile) args.push("--profile", profile);
  return JSON.parse(execFileSync(builder, args, { encoding: "utf8" })).items;
}

// The shop the bundled model was built from (deterministic), and its table.
const shop = join(work, "shop");
const table = join(work, "nightly");
let families;
before(() => {
  execFileSync(builder, ["synth", "--kind", "mother-baby", "--out", shop, "--end", specials.date]);
  const out = execFileSync(builder, ["users", "--data", shop, "--model", modelPath, "--out", table, "--salt", SALT, "--shards", "4", "--json"], { encoding: "utf8" });
  families = JSON.parse(out);
});

const profileFile = (uid) => {
  const h = execFileSync("python3", ["-c", `
import sys
h = 0xCBF29CE484222325
for b in sys.argv[1].encode():
    h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
print(f"{h:016x}")`, uid], { encoding: "utf8" }).trim();
  return join(table, "profiles", h.slice(0, 2), h.slice(2, 4), `${uid}.nrp`);
};

async function withUsers(put, check) {
  const mf = new Miniflare(workerOptions({ users: true, trustNow: true }));
  try {
    const base = await mf.ready;
    await put(await mf.getKVNamespace("USERS"));
    await check(base);
  } finally {
    await mf.dispose();
  }
}

const upload = (mutate = (name, bytes) => bytes) => async (kv) => {
  const index = JSON.parse(readFileSync(join(table, "edge/index.json"), "utf8"));
  await kv.put("index.json", JSON.stringify(mutate("index.json", index)));
  for (let k = 0; k < index.shards; k++) {
    const name = `shard-${String(k).padStart(5, "0")}.nrt`;
    await kv.put(name, mutate(name, readFileSync(join(table, "edge", name))));
  }
};

async function get(base, cookie) {
  const res = await fetch(new URL("/specials", base), { headers: { "x-nestrank-now": String(NOW), cookie } });
  const json = await res.json();
  return { res, json, order: json.items.map((i) => i.id) };
}

const signals = encodeSignals(specials.items.filter((s) => s.brand === "Tinytrek").slice(0, 3)
  .map((s, k) => ({ item: s.id, event: "view", ts: NOW - 3600 + 60 * k })));

test("a family's nightly profile personalizes an empty signals cookie, as the native core does", async () => {
  assert.ok(families.with_embedding > 2000, JSON.stringify(families));
  const users = ["f0", "f1", "f2"].filter((u) => readFileSync(profileFile(u)).length > 0);
  await withUsers(upload(), async (base) => {
    const orders = [];
    for (const uid of users) {
      const { res, json, order } = await get(base, `nr_uid=${uid}`);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-nestrank-profile"), "found", uid);
      assert.equal(json.personalized, true, uid);
      assert.equal(res.headers.get("cache-control"), "private, max-age=0");
      assert.deepEqual(order, native("", profileFile(uid)), `${uid}: the native core's order`);
      orders.push(order.slice(0, 10));
    }
    assert.notDeepEqual(orders[0], orders[1], "two families, two orders");
    // With signals too: the native order for both together.
    const { json, order } = await get(base, `nr_uid=${users[0]}; nr_signals=${signals}`);
    assert.equal(json.personalized, true);
    assert.deepEqual(order, native(signals, profileFile(users[0])));
    assert.notDeepEqual(order, native(signals), "the profile moved the order");
  });
});

test("no family, another model's table, a corrupt shard: the signals-only order, 200", async () => {
  const cases = [
    ["unknown visitor", upload(), "nr_uid=nobody-here", "not-found", null],
    ["a bad uid", upload(), "nr_uid=%00%ff", "no-uid", null],
    ["another model's table", upload((name, v) => (name === "index.json" ? { ...v, model_id: "0123456789abcdef" } : v)), "nr_uid=f0", "other-model", null],
    ["corrupt shards", upload((name, v) => {
      if (name === "index.json") return v;
      const b = Buffer.from(v);
      b[b.length >> 1] ^= 0xff;
      return b;
    }), "nr_uid=f0", "error", /KV USERS: invalid user-table shard: blob checksum mismatch/],
    ["no index", async () => {}, "nr_uid=f0", "error", /KV USERS: no valid index\.json/],
  ];
  for (const [what, put, uid, status, error] of cases) {
    await withUsers(put, async (base) => {
      const alone = await get(base, uid);
      assert.equal(alone.res.status, 200, what);
      assert.equal(alone.res.headers.get("x-nestrank-profile"), status, what);
      assert.deepEqual(alone.order, defaultOrder, `${what}: the default order`);
      assert.equal(alone.json.personalized, false, what);
      if (error) assert.match(alone.res.headers.get("x-nestrank-error"), error, what);
      const withSignals = await get(base, `${uid}; nr_signals=${signals}`);
      assert.deepEqual(withSignals.order, native(signals), `${what}: the signals-only order`);
    });
  }
});

test("the table holds no user id, and a new salt gives new keys", () => {
  const uids = readFileSync(join(shop, "users.csv"), "utf8").trim().split("\n").slice(1).map((l) => l.split(",")[0]);
  const shards = [0, 1, 2, 3].map((k) => readFileSync(join(table, `edge/shard-0000${k}.nrt`)));
  const found = uids.filter((u) => u.length >= 4 && shards.some((b) => b.includes(Buffer.from(u))));
  assert.deepEqual(found, [], "user ids in the table");
  const other = join(work, "nightly-2");
  execFileSync(builder, ["users", "--data", shop, "--model", modelPath, "--out", other, "--shards", "4"]);
  const index = JSON.parse(readFileSync(join(other, "edge/index.json"), "utf8"));
  assert.notEqual(index.salt, SALT);
  assert.match(index.salt, /^[0-9a-f]{32}$/);
  const sha = (p) => createHash("sha256").update(readFileSync(p)).digest("hex");
  assert.notEqual(sha(join(other, "edge/shard-00000.nrt")), sha(join(table, "edge/shard-00000.nrt")));
});
