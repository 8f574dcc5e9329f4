// The Miniflare (workerd) options for the worker: one place for start, tests
// and the benchmark. Modules resolve from the repository root, so the worker
// imports the built package from ../../pkg/.
import { fileURLToPath } from "node:url";
import { existsSync } from "node:fs";

export const repoRoot = fileURLToPath(new URL("../../", import.meta.url));

export function workerOptions({ port = 0, kv = false, users = false, trustNow = false, bench = false, root = repoRoot, script = "edge/src/worker.js" } = {}) {
  if (!existsSync(`${root}pkg/nestrank.js`)) {
    throw new Error(`${root}pkg/ is not built: run \`make pkg\` in the repository first`);
  }
  return {
    modules: true,
    scriptPath: `${root}${script}`,
    modulesRoot: root,
    modulesRules: [
      { type: "ESModule", include: ["**/*.js"] },
      { type: "CompiledWasm", include: ["**/*.wasm"] },
      { type: "Data", include: ["**/*.nrk", "**/*.nrp"] },
      { type: "Text", include: ["**/*.json", "**/*.html"] },
    ],
    compatibilityDate: "2026-07-01",
    host: "127.0.0.1",
    port,
    kvNamespaces: [...(kv ? ["MODELS"] : []), ...(users ? ["USERS"] : [])],
    bindings: {
      ...(trustNow ? { NESTRANK_TRUST_NOW: "1" } : {}),
      ...(bench ? { NESTRANK_BENCH: "1" } : {}),
    },
  };
}
