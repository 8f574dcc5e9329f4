// The families' nightly profiles at the edge (issue #20): the table that
// `model-builder users` writes under OUT/edge/, uploaded to the KV
// namespace USERS (index.json and shard-NNNNN.nrt). A visitor's
// first-party id cookie is hashed with the table's salt (HMAC-SHA256,
// WebCrypto), which names one shard; the shard is fetched once per isolate
// and the family found in it without a scan. The table holds no user id,
// and a new salt comes with every model.
//
// Anything missing or wrong (no binding, no cookie, a table for another
// model, a corrupt shard) means no profile: the worker ranks from the
// signals cookie alone, as before, and says why in x-nestrank-profile.
import { UserTable } from "../../pkg/nestrank.js";

export const UID_COOKIE = "nr_uid";
const UID = /^[A-Za-z0-9_-]{1,128}$/;
const INDEX_TTL_MS = 60_000;
const MAX_SHARDS = 64;

// Per isolate: the index (re-read every minute), and the shards fetched,
// keyed by salt and name (a re-read index with the same salt keeps them; a
// new salt's keys push the old shards out), the least recently used freed.
let table = null;
const shards = new Map();

async function loadTable(env) {
  const index = await env.USERS.get("index.json", "json");
  if (!index || index.format !== 1 || typeof index.salt !== "string" || !(index.shards >= 1)) {
    throw new Error("KV USERS: no valid index.json");
  }
  const salt = new Uint8Array(index.salt.match(/../g).map((h) => parseInt(h, 16)));
  const key = await crypto.subtle.importKey("raw", salt, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return { index, key };
}

async function currentTable(env) {
  const now = Date.now();
  if (!table || now - table.at > INDEX_TTL_MS) {
    const at = now;
    table = { at, loading: loadTable(env).catch((e) => ({ error: e.message })) };
  }
  return table.loading;
}

async function shard(t, env, n) {
  const name = `shard-${String(n).padStart(5, "0")}.nrt`;
  const id = `${t.index.salt}:${name}`;
  let entry = shards.get(id);
  if (entry) {
    shards.delete(id); // to the most recent end
  } else {
    entry = env.USERS.get(name, "arrayBuffer").then((bytes) => {
      if (!bytes) throw new Error(`${name} is missing`);
      return UserTable.fromBytes(new Uint8Array(bytes));
    });
    // A failed fetch is retried by the next request.
    entry.catch(() => shards.get(id) === entry && shards.delete(id));
    if (shards.size >= MAX_SHARDS) {
      const [oldest, dropped] = shards.entries().next().value;
      shards.delete(oldest);
      dropped.then((s) => s.free(), () => {});
    }
  }
  shards.set(id, entry);
  return entry;
}

/**
 * The visitor's nightly profile for the model `modelId`:
 * `{ status, profile?, error? }`; `status` is `found`, `no-table`,
 * `no-uid`, `not-found`, `other-model` or `error`. The caller frees
 * `profile`.
 */
export async function nightlyProfile(env, uid, modelId) {
  if (!env.USERS) return { status: "no-table" };
  if (uid === null || !UID.test(uid)) return { status: "no-uid" };
  try {
    const t = await currentTable(env);
    if (t.error) return { status: "error", error: t.error };
    if (t.index.model_id !== modelId) return { status: "other-model" };
    const mac = new Uint8Array(await crypto.subtle.sign("HMAC", t.key, new TextEncoder().encode(uid)));
    const s = await shard(t, env, UserTable.shardOf(mac, t.index.shards));
    const profile = s.lookup(mac);
    if (!profile) return { status: "not-found" };
    if (profile.embeddingModelId !== undefined && profile.embeddingModelId !== modelId) {
      profile.free();
      return { status: "other-model" };
    }
    return { status: "found", profile };
  } catch (e) {
    return { status: "error", error: `KV USERS: ${e.message}` };
  }
}
