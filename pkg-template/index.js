// nestrank for browsers and Workers: the wasm core plus the local signal
// store and the verified model loader. In a browser call `await init()`
// (loadModel does it for you: it picks the SIMD build where the engine has
// wasm SIMD, wasm.js); in a Worker, `initSync({ module })` with the
// imported `nestrank_simd_bg.wasm` (workerd has SIMD).
export * from "./nestrank.js";
export { default, simd, wasmFile, wasmUrl } from "./wasm.js";
export { SignalStore, visitorId, VISITOR_COOKIE } from "./store.js";
export { loadModel, sha256Hex } from "./load.js";
