// loadModel: fetch manifest.json, then the content-addressed blob it names,
// while the wasm compiles; check the blob's size and SHA-256 (WebCrypto)
// against the manifest and decode it; cache it (Cache API where present,
// else memory) so a reload downloads nothing; and when the new blob fails
// anywhere, fall back to the last good one.
import { Recommender } from "./nestrank.js";
import init from "./wasm.js";

const CACHE = "nestrank-models";
const LAST_GOOD = "nestrank-last-good";
const memory = new Map(); // url -> Uint8Array, where there is no Cache API

function loadError(message, cause) {
  const e = new Error(message, cause ? { cause } : undefined);
  e.name = "NestrankLoadError";
  return e;
}

const now = () => globalThis.performance?.now() ?? Date.now();

// A blob cache: the Cache API where present (survives reloads), else a map
// (memory: lives as long as the module; `cache: false` gives a throwaway one).
async function openCache(useCache) {
  let cache = null;
  try {
    cache = useCache && globalThis.caches ? await globalThis.caches.open(CACHE) : null;
  } catch {
    cache = null; // e.g. an opaque origin
  }
  if (!cache) {
    const map = useCache ? memory : new Map();
    return {
      get: async (url) => map.get(url) ?? null,
      put: async (url, bytes) => void map.set(url, bytes),
      prune: async (keep) => {
        for (const url of [...map.keys()]) if (!keep.includes(url)) map.delete(url);
      },
    };
  }
  return {
    async get(url) {
      try {
        const r = await cache.match(url);
        return r ? new Uint8Array(await r.arrayBuffer()) : null;
      } catch {
        return null;
      }
    },
    async put(url, bytes) {
      try {
        await cache.put(url, new Response(bytes, { headers: { "content-type": "application/octet-stream" } }));
      } catch (e) {
        console.warn(`nestrank: cannot cache the model (${e.message})`);
      }
    },
    async prune(keep) {
      try {
        for (const req of await cache.keys()) if (!keep.includes(req.url)) await cache.delete(req);
      } catch {
        /* best effort */
      }
    },
  };
}

// A page may preload the manifest (<link rel="preload" as="fetch">), so
// that it is asked for while the modules load; the fetch in loadModel then
// takes that response, which came through the HTTP cache. It is as fresh as
// the host's Cache-Control makes it: fresh when that says to revalidate
// every time (no-cache, no-store, max-age=0), else asked for again.
function preloaded(url) {
  const links = globalThis.document?.querySelectorAll?.('link[rel="preload"]') ?? [];
  return Array.prototype.some.call(links, (l) => l.href === url);
}
const revalidated = (res) => /\b(no-cache|no-store|max-age=0)\b/.test(res.headers.get("cache-control") ?? "");

/** Lowercase hex SHA-256 (WebCrypto where present; a plain fallback on insecure origins). */
export async function sha256Hex(bytes) {
  const subtle = globalThis.crypto?.subtle;
  const digest = subtle ? new Uint8Array(await subtle.digest("SHA-256", bytes)) : sha256(bytes);
  return Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** FIPS 180-4 SHA-256, for origins without WebCrypto (plain http on a LAN). */
export function sha256(bytes) {
  const n = bytes.length, padded = new Uint8Array(((n + 9 + 63) >> 6) << 6);
  padded.set(bytes);
  padded[n] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(n / 0x20000000));
  view.setUint32(padded.length - 4, (n << 3) >>> 0);
  const h = new Uint32Array([0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]);
  const w = new Uint32Array(64);
  const rot = (x, r) => (x >>> r) | (x << (32 - r));
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + 4 * i);
    for (let i = 16; i < 64; i++) {
      const s0 = rot(w[i - 15], 7) ^ rot(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rot(w[i - 2], 17) ^ rot(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rot(e, 6) ^ rot(e, 11) ^ rot(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
      const t2 = ((rot(a, 2) ^ rot(a, 13) ^ rot(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      [hh, g, f, e, d, c, b, a] = [g, f, e, (d + t1) >>> 0, c, b, a, (t1 + t2) >>> 0];
    }
    h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
  }
  const out = new Uint8Array(32);
  for (let i = 0; i < 8; i++) new DataView(out.buffer).setUint32(4 * i, h[i]);
  return out;
}

function checkManifest(m, url) {
  const bad = (what) => loadError(`manifest ${url}: ${what}`);
  if (m === null || typeof m !== "object") throw bad("not a JSON object");
  if (typeof m.file !== "string" || !/^[A-Za-z0-9._-]+$/.test(m.file)) throw bad("`file` must be a plain file name");
  if (typeof m.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(m.sha256)) throw bad("`sha256` must be 64 lowercase hex digits");
  if (!Number.isSafeInteger(m.bytes) || m.bytes <= 0) throw bad("`bytes` must be a positive integer");
  return m;
}

// `sha`: the bytes' hash if already known.
async function verified(bytes, manifest, blobUrl, sha) {
  if (bytes.length !== manifest.bytes) {
    throw loadError(`model ${blobUrl}: ${bytes.length} bytes, the manifest says ${manifest.bytes}`);
  }
  sha ??= await sha256Hex(bytes);
  if (sha !== manifest.sha256) {
    throw loadError(`model ${blobUrl}: sha256 ${sha} does not match the manifest's ${manifest.sha256}`);
  }
  let rec;
  try {
    rec = Recommender.fromBytes(bytes);
  } catch (e) {
    throw loadError(`model ${blobUrl}: ${e.message}`, e);
  }
  if (manifest.model_id !== undefined && rec.modelId !== manifest.model_id) {
    rec.free();
    throw loadError(`model ${blobUrl}: model id ${rec.modelId}, the manifest says ${manifest.model_id}`);
  }
  return rec;
}

/**
 * Loads the model a manifest names. Resolves to
 * `{recommender, manifest, source: "network" | "cache" | "fallback", error?, timings}`;
 * rejects with an Error named `NestrankLoadError` only when neither the new
 * blob nor a last good one is usable.
 */
export async function loadModel(manifestUrl, options = {}) {
  const fetchFn = options.fetch ?? globalThis.fetch;
  const base = new URL(manifestUrl, globalThis.location?.href);
  const timings = { fetchMs: 0, verifyMs: 0 };
  // The wasm compiles while the manifest and the blob download: it is
  // needed only to decode. (init is idempotent, so the page may start it too.)
  const wasmReady = init(options.wasm ? { module_or_path: options.wasm } : undefined);
  wasmReady.catch(() => {}); // awaited below, where its error is handled
  let t = now();
  // The manifest is asked for at once, while the cache opens.
  const manifestResponse = (async () => fetchFn(base.href, { cache: "no-cache" }))();
  manifestResponse.catch(() => {}); // awaited below, where its error is handled
  const cacheReady = openCache(options.cache !== false);
  const lastGoodUrl = new URL(LAST_GOOD, base).href;
  // The last good model is read and hashed while the manifest is asked
  // for: on most loads it is the very blob the manifest names, and it is
  // used when its size and SHA-256 are the manifest's.
  const lastGood = (async () => {
    const bytes = await (await cacheReady).get(lastGoodUrl);
    return bytes && { bytes, sha: await sha256Hex(bytes) };
  })().catch(() => null);
  let cache = null;
  try {
    let res = await manifestResponse;
    if (res.ok && preloaded(base.href) && !revalidated(res)) res = await fetchFn(base.href, { cache: "no-cache" });
    if (!res.ok) throw loadError(`manifest ${base.href}: HTTP ${res.status}`);
    let manifest;
    try {
      manifest = await res.json();
    } catch (e) {
      throw loadError(`manifest ${base.href}: not JSON (${e.message})`, e);
    }
    checkManifest(manifest, base.href);
    const blobUrl = new URL(manifest.file, base).href;
    const download = async () => {
      const r = await fetchFn(blobUrl);
      if (!r.ok) throw loadError(`model ${blobUrl}: HTTP ${r.status}`);
      return new Uint8Array(await r.arrayBuffer());
    };
    cache = await cacheReady;
    const last = await lastGood;
    const reused = Boolean(last) && last.bytes.length === manifest.bytes && last.sha === manifest.sha256;
    let bytes = reused ? last.bytes : await cache.get(blobUrl);
    let source = "cache";
    if (!bytes) {
      bytes = await download();
      source = "network";
    }
    timings.fetchMs = now() - t;
    await wasmReady;
    t = now();
    let recommender;
    try {
      recommender = await verified(bytes, manifest, blobUrl, reused ? last.sha : undefined);
    } catch (e) {
      if (source !== "cache") throw e;
      // A damaged cached copy: download it afresh.
      bytes = await download();
      source = "network";
      recommender = await verified(bytes, manifest, blobUrl);
    }
    timings.verifyMs = now() - t;
    // The model is handed over before the cache writes finish.
    const stored = (async () => {
      if (source === "network") await cache.put(blobUrl, bytes);
      if (!(reused && source === "cache")) await cache.put(lastGoodUrl, bytes);
      await cache.prune([blobUrl, lastGoodUrl]);
    })();
    return { recommender, manifest, source, timings, stored };
  } catch (error) {
    cache ??= await cacheReady;
    const last = (await lastGood)?.bytes;
    if (last && (await wasmReady.then(() => true, () => false))) {
      try {
        const recommender = Recommender.fromBytes(last);
        console.warn(`nestrank: using the last good model ${recommender.modelId}: ${error.message}`);
        return { recommender, manifest: null, source: "fallback", error, timings };
      } catch {
        /* the cached copy is damaged too */
      }
    }
    throw error.name === "NestrankLoadError" ? error : loadError(`cannot load the model: ${error.message}`, error);
  }
}
