// nestrank for Node: the wasm is read from disk and instantiated on import
// (the SIMD build where the engine validates it, wasm.js).
import { readFileSync } from "node:fs";
import { initSync } from "./nestrank.js";
import { wasmUrl } from "./wasm.js";

initSync({ module: readFileSync(wasmUrl()) });

export * from "./index.js";
export { default } from "./index.js";
