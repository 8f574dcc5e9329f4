// SignalStore: the user's browsing signals, kept on the device only, in
// localStorage, in the core's compact versioned codec (the same text the
// nr_signals cookie carries). Bounded: the newest `maxEvents` events within
// `horizonDays`. A corrupt or foreign stored value is dropped with one
// console warning; storage that refuses writes (private mode, quota) leaves
// the store working in memory.
import { encodeSignals, decodeSignals } from "./nestrank.js";

const EVENTS = new Set(["view", "fav", "cart", "purchase"]);

function argumentError(message) {
  const e = new Error(message);
  e.name = "NestrankArgumentError";
  return e;
}

function defaultStorage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null; // a sandboxed iframe throws on access
  }
}

export class SignalStore {
  #storage;
  #key;
  #maxEvents;
  #horizon;
  #now;
  #signals = null;

  /**
   * @param {object} [options]
   * @param {Storage|null} [options.storage] where to keep them (default: localStorage; null: memory only)
   * @param {string} [options.key] the storage key (default "nestrank:signals")
   * @param {number} [options.maxEvents] newest events kept (default 200, at most 1024)
   * @param {number} [options.horizonDays] events older than this are pruned (default 30)
   * @param {() => number} [options.now] the clock, Unix seconds
   */
  constructor(options = {}) {
    this.#storage = options.storage === undefined ? defaultStorage() : options.storage;
    this.#key = options.key ?? "nestrank:signals";
    this.#maxEvents = Math.max(1, Math.min(1024, Math.floor(options.maxEvents ?? 200)));
    this.#horizon = (options.horizonDays ?? 30) * 86400;
    this.#now = options.now ?? (() => Date.now() / 1000);
  }

  #load() {
    if (this.#signals) return this.#signals;
    let text = null;
    try {
      text = this.#storage?.getItem(this.#key) ?? null;
    } catch (e) {
      console.warn(`nestrank: cannot read stored signals (${e.message}); starting empty`);
    }
    this.#signals = [];
    if (text !== null) {
      try {
        this.#signals = decodeSignals(text);
      } catch (e) {
        console.warn(`nestrank: discarding stored signals under "${this.#key}": ${e.message}`);
        this.#remove();
      }
    }
    this.#prune();
    return this.#signals;
  }

  #prune() {
    const oldest = this.#now() - this.#horizon;
    let s = this.#signals.filter((x) => x.ts >= oldest);
    if (s.length > this.#maxEvents) s = s.slice(s.length - this.#maxEvents);
    this.#signals = s;
  }

  #remove() {
    try {
      this.#storage?.removeItem(this.#key);
    } catch {
      /* storage gone: nothing to forget */
    }
  }

  #save() {
    if (!this.#storage) return;
    try {
      this.#storage.setItem(this.#key, encodeSignals(this.#signals));
    } catch (e) {
      console.warn(`nestrank: cannot store signals (${e.message}); keeping them in memory`);
    }
  }

  /** Records that the user did `event` ("view", "fav", "cart", "purchase") to `itemId`. */
  track(itemId, event = "view", ts = this.#now()) {
    if (typeof itemId !== "string" || itemId.length === 0) {
      throw argumentError("track: itemId must be a non-empty string");
    }
    if (!EVENTS.has(event)) {
      throw argumentError(`track: event must be view, fav, cart or purchase, not ${String(event)}`);
    }
    if (typeof ts !== "number" || !Number.isFinite(ts)) {
      throw argumentError("track: ts must be a finite number of Unix seconds");
    }
    const signal = { item: itemId, event, ts: Math.floor(ts) };
    // The codec's checks (id length, control characters, time range) throw
    // here, before anything is kept.
    encodeSignals([signal]);
    const signals = this.#load();
    signals.push(signal);
    signals.sort((a, b) => a.ts - b.ts);
    this.#prune();
    this.#save();
  }

  /** The kept signals, oldest first: `[{item, event, ts}]`. */
  signals() {
    this.#load();
    this.#prune();
    return this.#signals.map((s) => ({ ...s }));
  }

  /** Forgets everything: the user's right to be forgotten, on this device. */
  clear() {
    this.#signals = [];
    this.#remove();
  }

  /** The signals as the value of the `nr_signals` cookie: the newest that fit in `maxChars` (default 3800). */
  toCookie(maxChars = 3800) {
    return encodeSignals(this.#load(), maxChars);
  }
}

/** The cookie an edge worker and the page share the visitor id in. */
export const VISITOR_COOKIE = "nr_vid";
const VISITOR_KEY = "nestrank:visitor";
const VISITOR_ID = /^[A-Za-z0-9-]{8,64}$/;

function readVisitorCookie(cookie) {
  for (const part of (cookie ?? "").split(";")) {
    const [k, v] = part.trim().split("=");
    if (k === VISITOR_COOKIE && VISITOR_ID.test(v ?? "")) return v;
  }
  return null;
}

/**
 * The visitor id experiments assign by: random, first-party, drawn once
 * (`crypto.randomUUID`) and kept, never derived from anything about the
 * person. An id the edge worker set in the `nr_vid` cookie wins, so that
 * the page and the worker agree; otherwise the one in storage; otherwise a
 * new one. With `cookie: true` the id is also written to `nr_vid` for the
 * worker. Storage that refuses writes gives an id for this page view only.
 * @param {object} [options]
 * @param {Storage|null} [options.storage] default: localStorage
 * @param {boolean} [options.cookie] also keep it in the `nr_vid` cookie
 * @returns {string}
 */
export function visitorId({ storage = defaultStorage(), cookie = false } = {}) {
  const doc = globalThis.document;
  let id = doc ? readVisitorCookie(doc.cookie) : null;
  if (!id) {
    try {
      const kept = storage?.getItem(VISITOR_KEY);
      if (VISITOR_ID.test(kept ?? "")) id = kept;
    } catch {
      // refused: a new id below
    }
  }
  id ??= globalThis.crypto.randomUUID();
  try {
    storage?.setItem(VISITOR_KEY, id);
  } catch {
    // this page view only
  }
  if (cookie && doc) doc.cookie = `${VISITOR_COOKIE}=${id}; Path=/; Max-Age=31536000; SameSite=Lax`;
  return id;
}
