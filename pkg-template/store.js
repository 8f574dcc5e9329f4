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
