// nestrank for Node: the wasm is read from disk and instantiated on import.
import { readFileSync } from "node:fs";
import { initSync } from "./nestrank.js";

initSync({ module: readFileSync(new URL("./nestrank_bg.wasm", import.meta.url)) });

export * from "./index.js";
export { default } from "./index.js";
