// Which build of the core this engine runs. The package holds two:
// nestrank_simd_bg.wasm, with wasm's 128-bit SIMD (Chrome 91, Safari 16.4,
// Firefox 89, Node 16.4 and later: the typed rerank in about two thirds of
// the time), and
// nestrank_bg.wasm for engines without it. Both compute the same results to
// the bit and share one JS glue (nestrank.js).
import glueInit from "./nestrank.js";

// (module (func (result v128) i32.const 0 i8x16.splat i8x16.popcnt))
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11,
]);

/** Whether this engine runs the SIMD build. */
export const simd = (() => {
  try {
    return WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
})();

/** The file name of the build this engine runs. */
export const wasmFile = simd ? "nestrank_simd_bg.wasm" : "nestrank_bg.wasm";

/**
 * The URL of the build this engine runs, in the folder `base` (by default
 * the package's own, which a bundler may not keep beside the .wasm files).
 */
export function wasmUrl(base = import.meta.url) {
  return new URL(wasmFile, base);
}

/**
 * Instantiates the core: the build this engine runs, from beside the
 * package, unless `options.module_or_path` names another source.
 */
export default function init(options) {
  return glueInit(options ?? { module_or_path: wasmUrl() });
}
