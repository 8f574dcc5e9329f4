// nestrank at the edge: a module worker that personalizes the shop's cached,
// non-personalized specials page for each visitor from the `nr_signals`
// cookie the page writes (the core's compact codec), with the model loaded
// and verified once per isolate. Anything wrong with the cookie or the model
// gives the default order with status 200, never a 500.
//
//   GET /specials  JSON {"model": id|null, "personalized": bool, "items": [...]}
//   GET /          the HTML page, its #specials list reordered by HTMLRewriter
//
// The model comes from the KV namespace MODELS when bound (the nightly
// publish uploads manifest.json and the blob it names; the blob's sha256 is
// checked against the manifest), else from the sample bundled with the worker.
// Operations change the page without a new model through the same KV:
// `rules.json` (a rule set, README "Business rules") replaces the blob's
// rules and `sold-out.json` (an array of ids) hides items, on the
// personalized and the default page alike; both are re-read every minute.
// With the KV namespace USERS bound (`model-builder users`' edge table) and
// an `nr_uid` cookie, the visitor's nightly profile joins the signals: its
// embedding personalizes even an empty signals cookie (users.js).
// An A/B experiment runs from `experiment.json` in the same KV (re-read
// with the rules): each visitor is assigned by the `nr_vid` cookie (a random
// id the page or this worker draws, set here when missing) with the core's
// hash, so the page and the worker agree; the variant goes out in
// x-nestrank-variant, and a control variant gets the shop's order.
import { initSync, Recommender, decodeSignals } from "../../pkg/nestrank.js";
import { sha256Hex } from "../../pkg/load.js";
import wasmModule from "../../pkg/nestrank_simd_bg.wasm";
import sampleModel from "../sample/model.nrk";
import sampleSpecials from "../sample/specials.json";
import samplePage from "../sample/index.html";
import { renderCard } from "./page.js";
import { COOKIE, MAX_COOKIE_CHARS, VISITOR_COOKIE, readCookie } from "./cookie.js";
import { UID_COOKIE, nightlyProfile } from "./users.js";

const RETRY_AFTER_MS = 60_000;
const OPS_TTL_MS = 60_000;

const specials = JSON.parse(sampleSpecials);
const ids = specials.items.map((s) => s.id);
const byId = new Map(specials.items.map((s) => [s.id, s]));

let wasmError = null;
try {
  initSync({ module: wasmModule });
} catch (e) {
  wasmError = `wasm: ${e.message}`;
}

// (A module worker's named exports are entrypoints: helpers live in other modules.)

// Once per isolate: { rec, id } or { error }. A failure is retried after a minute.
let loaded = null;
let loadedAt = 0;

async function loadModel(env) {
  if (wasmError) return { error: wasmError };
  try {
    let bytes;
    if (env.MODELS) {
      const manifest = await env.MODELS.get("manifest.json", "json");
      if (!manifest || typeof manifest.file !== "string") return { error: "KV MODELS: no manifest.json" };
      const blob = await env.MODELS.get(manifest.file, "arrayBuffer");
      if (!blob) return { error: `KV MODELS: ${manifest.file} is missing` };
      bytes = new Uint8Array(blob);
      const sha = await sha256Hex(bytes);
      if (sha !== manifest.sha256) return { error: `KV MODELS: ${manifest.file} sha256 ${sha} does not match the manifest` };
    } else {
      bytes = new Uint8Array(sampleModel);
    }
    const rec = Recommender.fromBytes(bytes);
    return { rec, id: rec.modelId };
  } catch (e) {
    return { error: e.message };
  }
}

async function model(env) {
  const now = Date.now();
  if (!loaded || (loaded.error && now - loadedAt > RETRY_AFTER_MS)) {
    loadedAt = now;
    loaded = loadModel(env).then((m) => {
      if (m.error) console.warn(`nestrank edge: serving the default order: ${m.error}`);
      return m;
    });
  }
  return loaded;
}

// Operations' rules and sold-out list from KV, at most once a minute per
// isolate. A bad file keeps what was in force and reports itself in
// x-nestrank-error; `hidden` is what the default page must drop too.
async function refreshOps(m, env) {
  if (!m.rec || !env.MODELS || Date.now() - (m.opsAt ?? -Infinity) < OPS_TTL_MS) return;
  m.opsAt = Date.now();
  m.opsError = null;
  try {
    const [rules, soldOut, experiment] = await Promise.all([
      env.MODELS.get("rules.json", "text"),
      env.MODELS.get("sold-out.json", "text"),
      env.MODELS.get("experiment.json", "text"),
    ]);
    try {
      // A bad experiment leaves the last good one running (the core keeps it).
      m.rec.setExperiment(experiment);
      m.experiment = experiment !== null;
    } catch (e) {
      m.opsError = `KV ops: ${e.message}`;
    }
    m.rec.setRules(rules);
    const ids = soldOut === null ? [] : JSON.parse(soldOut);
    if (!Array.isArray(ids) || ids.some((x) => typeof x !== "string")) throw new Error("sold-out.json must be an array of item ids");
    m.rec.setSoldOut(ids);
    m.hidden = new Set([...ids, ...(m.rec.rules.filter ?? [])]);
  } catch (e) {
    m.opsError = `KV ops: ${e.message}`;
  }
}

// The visitor's signals from the cookie, or why there are none.
function readSignals(request) {
  const raw = readCookie(request.headers.get("cookie"), COOKIE);
  if (raw === null || raw === "") return { why: "no-cookie" };
  if (raw.length > MAX_COOKIE_CHARS) return { why: "cookie-too-large" };
  try {
    return { signals: decodeSignals(raw) };
  } catch {
    return { why: "cookie-invalid" };
  }
}

// The visitor's order, or why there is none. `profile`: the family's
// nightly profile (its embedding is the fold-in's prior), or undefined.
function personalize(m, request, now, profile, visitor) {
  if (!m.rec) return { why: "no-model" };
  const variant = m.experiment ? m.rec.setVisitor(visitor ?? "") : undefined;
  if (variant && m.rec.variantOrder === "shop") return { why: "control", variant };
  const result = rank(m, request, now, profile);
  return variant ? { ...result, variant } : result;
}

function rank(m, request, now, profile) {
  const read = readSignals(request);
  if (profile) m.rec.setProfile(profile);
  try {
    const embedding = Boolean(profile) && m.rec.usesEmbedding;
    if (read.why && !embedding) return { why: read.why };
    // The core decides which signals count (the phone's page ranks the same
    // signals the same way); none counting and no embedding means no
    // personalized order.
    const out = m.rec.rerank(ids, read.signals ?? [], { now, explain: true });
    if (out.signalsUsed === 0 && !embedding) return { why: "no-usable-signals" };
    return { why: "personalized", items: out.items, reasons: out.reasons };
  } finally {
    if (profile) m.rec.clearProfile();
  }
}

function headers(m, result, type, nightly, newVisitor) {
  const h = new Headers({
    "content-type": type,
    "x-nestrank-model": m.id ?? "none",
    "x-nestrank": result.why,
    "x-nestrank-profile": nightly.status,
    vary: "Cookie",
    // Only the non-personalized page may sit in a shared cache.
    "cache-control": result.items || newVisitor ? "private, max-age=0" : "public, max-age=300",
  });
  if (newVisitor) h.append("set-cookie", `${VISITOR_COOKIE}=${newVisitor}; Path=/; Max-Age=31536000; SameSite=Lax`);
  if (result.variant) h.set("x-nestrank-variant", result.variant);
  const error = m.error ?? m.opsError ?? nightly.error;
  if (error) h.set("x-nestrank-error", error.slice(0, 200).replace(/[^\x20-\x7e]/g, "?"));
  return h;
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.method !== "GET" && request.method !== "HEAD") {
      return new Response("method not allowed", { status: 405, headers: { allow: "GET, HEAD" } });
    }
    const bench = url.pathname === "/__bench" && env.NESTRANK_BENCH === "1";
    if (url.pathname !== "/" && url.pathname !== "/specials" && !bench) {
      return new Response("not found", { status: 404 });
    }
    const m = await model(env);
    await refreshOps(m, env);
    const hidden = m.hidden ?? new Set();
    // Tests pin the clock; a deployment ignores the header unless told to trust it.
    const pinned = env.NESTRANK_TRUST_NOW === "1" ? Number(request.headers.get("x-nestrank-now")) : NaN;
    const now = Number.isFinite(pinned) ? pinned : Date.now() / 1000;
    const uid = readCookie(request.headers.get("cookie"), UID_COOKIE);
    // The visitor id experiments assign by: the page's or ours, drawn once.
    const kept = readCookie(request.headers.get("cookie"), VISITOR_COOKIE);
    const newVisitor = m.experiment && !/^[A-Za-z0-9-]{8,64}$/.test(kept ?? "") ? crypto.randomUUID() : null;
    const visitor = newVisitor ?? kept;
    const nightly = m.rec ? await nightlyProfile(env, uid, m.id) : { status: "no-model" };
    let result;
    try {
      result = personalize(m, request, now, nightly.profile, visitor);
    } catch (e) {
      console.warn(`nestrank edge: rerank failed: ${e.message}`);
      result = { why: "rerank-failed" };
    }
    if (bench) {
      // Benchmark builds only: the cost of personalizing this request, n times.
      const n = Math.min(20_000, Math.max(1, Number(url.searchParams.get("n")) || 1000));
      const t = performance.now();
      for (let k = 0; k < n; k++) personalize(m, request, now, nightly.profile, visitor);
      nightly.profile?.free();
      return Response.json({ n, ms: performance.now() - t, why: result.why });
    }
    nightly.profile?.free();
    if (url.pathname === "/specials") {
      const items = result.items
        ? result.items.map((id, k) => ({ ...byId.get(id), reason: result.reasons[k] }))
        : specials.items.filter((s) => !hidden.has(s.id));
      const body = JSON.stringify({ model: m.id ?? null, personalized: Boolean(result.items), items });
      return new Response(body, { headers: headers(m, result, "application/json", nightly, newVisitor) });
    }
    const page = new Response(samplePage, { headers: headers(m, result, "text/html; charset=utf-8", nightly, newVisitor) });
    let rewriter = new HTMLRewriter().on("#model-id", {
      element(e) {
        e.setInnerContent(m.id ?? "none");
      },
    });
    if (!result.items && hidden.size > 0) {
      rewriter = rewriter.on("#specials > li", {
        element(e) {
          if (hidden.has(e.getAttribute("data-item-id"))) e.remove();
        },
      });
    }
    if (result.items) {
      // Streaming: the cached cards are dropped as they pass and the
      // reordered ones written before the list's end tag.
      const cards = result.items.map((id, k) => renderCard(byId.get(id), result.reasons[k])).join("");
      rewriter = rewriter
        .on("#specials > li", {
          element(e) {
            e.remove();
          },
        })
        .on("#specials", {
          element(e) {
            e.onEndTag((end) => {
              end.before(cards, { html: true });
            });
          },
        });
    }
    return rewriter.transform(page);
  },
};
