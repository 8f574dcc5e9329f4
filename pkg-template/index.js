// nestrank for browsers and Workers: the wasm core plus the local signal
// store and the verified model loader. In a browser call `await init()`
// (loadModel does it for you); in a Worker, `initSync({ module })` with the
// imported `nestrank_bg.wasm`.
export * from "./nestrank.js";
export { default } from "./nestrank.js";
export { SignalStore, visitorId, VISITOR_COOKIE } from "./store.js";
export { loadModel, sha256Hex } from "./load.js";
