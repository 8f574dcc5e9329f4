// Types of the nestrank package: the wasm core's own declarations plus the
// signal store and the model loader.
export * from "./nestrank.js";
export { default } from "./nestrank.js";

/** Whether this engine runs the SIMD build (`nestrank_simd_bg.wasm`); both builds give the same results. */
export const simd: boolean;
/** The file name of the build this engine runs. */
export const wasmFile: "nestrank_simd_bg.wasm" | "nestrank_bg.wasm";
/** The URL of the build this engine runs, in the folder `base` (default: beside the package). */
export function wasmUrl(base?: string | URL): URL;
import type { Recommender, Signal, DecodedSignal } from "./nestrank.js";

/** Options of `SignalStore`. */
export interface SignalStoreOptions {
  /** Where to keep the signals (default: `localStorage`; `null`: memory only). */
  storage?: Storage | null;
  /** The storage key (default `"nestrank:signals"`). */
  key?: string;
  /** The newest events kept (default 200, at most 1024). */
  maxEvents?: number;
  /** Events older than this many days are pruned (default 30). */
  horizonDays?: number;
  /** The clock, Unix seconds (default `Date.now() / 1000`). */
  now?: () => number;
}

/** The user's browsing signals, kept on the device only. */
export class SignalStore {
  constructor(options?: SignalStoreOptions);
  /** Records an event; throws `NestrankArgumentError` on a bad id, event or time. */
  track(itemId: string, event?: "view" | "fav" | "cart" | "purchase", ts?: number): void;
  /** The kept signals, oldest first. */
  signals(): DecodedSignal[];
  /** Forgets every signal on this device. */
  clear(): void;
  /** The `nr_signals` cookie value: the newest signals that fit in `maxChars` (default 3800). */
  toCookie(maxChars?: number): string;
}

/** The `manifest.json` that `model-builder build` writes beside the blob. */
export interface Manifest {
  file: string;
  sha256: string;
  bytes: number;
  format_version?: number;
  model_id?: string;
  as_of?: string;
  [key: string]: unknown;
}

/** Options of `loadModel`. */
export interface LoadModelOptions {
  /** The fetch to use (default `globalThis.fetch`). */
  fetch?: typeof fetch;
  /** Cache blobs (Cache API where present, else memory); default true. */
  cache?: boolean;
  /** Where the `.wasm` is, if not beside the module. */
  wasm?: string | URL | Response | BufferSource | WebAssembly.Module;
}

/** What `loadModel` resolves to. */
export interface LoadedModel {
  recommender: Recommender;
  /** The manifest, or null when the last good blob stood in. */
  manifest: Manifest | null;
  /** Where the blob came from. */
  source: "network" | "cache" | "fallback";
  /** Why the new blob was not used (only with `source: "fallback"`). */
  error?: Error;
  /** Milliseconds spent fetching, and verifying + decoding. */
  timings: { fetchMs: number; verifyMs: number };
  /** Resolves once the blob is in the cache (the model is handed over first); not with `source: "fallback"`. */
  stored?: Promise<void>;
}

/** Fetches, verifies (size, SHA-256, decode), caches and falls back; rejects with `NestrankLoadError`. */
export function loadModel(manifestUrl: string | URL, options?: LoadModelOptions): Promise<LoadedModel>;

/** Lowercase hex SHA-256 of the bytes. */
export function sha256Hex(bytes: Uint8Array): Promise<string>;

/** Options of `visitorId`. */
export interface VisitorIdOptions {
  /** Where to keep it (default: `localStorage`; `null`: this page view only). */
  storage?: Storage | null;
  /** Also write it to the `nr_vid` cookie, for an edge worker (default false). */
  cookie?: boolean;
}

/** The random first-party visitor id experiments assign by (`Recommender.setVisitor`): the `nr_vid` cookie's, else the kept one, else a new one. */
export function visitorId(options?: VisitorIdOptions): string;

/** `"nr_vid"`: the cookie the page and an edge worker share the visitor id in. */
export const VISITOR_COOKIE: string;

export type { Signal, DecodedSignal };
