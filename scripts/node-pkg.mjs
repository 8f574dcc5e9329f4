// Loads the built package (pkg/) under Node: --target web output, so the
// wasm bytes are read from disk and given to initSync.
import { cpSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

export const pkgDir = fileURLToPath(new URL("../pkg/", import.meta.url));

/**
 * The package's core, instantiated from `file` (by default the build this
 * engine runs, as the package's node.js picks it). Another build gets its
 * own copy of the glue, since a runtime instantiates a module once per path:
 * so both builds can run in one process.
 */
export async function loadNestrank(file) {
  const picked = (await import(pathToFileURL(join(pkgDir, "wasm.js")))).wasmFile;
  file ??= picked;
  const dir = file === picked ? pkgDir : mkdtempSync(join(tmpdir(), "nestrank-pkg-"));
  try {
    if (dir !== pkgDir) cpSync(pkgDir, dir, { recursive: true });
    const mod = await import(pathToFileURL(join(dir, "nestrank.js")));
    mod.initSync({ module: readFileSync(join(dir, file)) });
    return mod;
  } finally {
    if (dir !== pkgDir) rmSync(dir, { recursive: true, force: true });
  }
}

// FNV-1a 64-bit, as EVAL.md fixes it for the candidate order.
export function fnv1a64(text) {
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(text)) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h;
}

// Reads a canonical events.csv (user_id,item_id,event,ts; plain fields).
export function readEvents(path) {
  const lines = readFileSync(path, "utf8").split("\n");
  const header = lines[0].split(",");
  const col = (name) => header.indexOf(name);
  const [u, i, e, t] = ["user_id", "item_id", "event", "ts"].map(col);
  const events = [];
  for (const line of lines.slice(1)) {
    if (!line) continue;
    const f = line.split(",");
    events.push({ user: f[u], item: f[i], event: f[e], ts: Number(f[t]) });
  }
  return events;
}

// The day's specials as EVAL.md defines them: items converted on the day
// (top 500 by conversions), in the fixed FNV-1a order.
export function specialsOf(events, date) {
  const start = Date.parse(date + "T00:00:00Z") / 1000;
  const end = start + 86400;
  const conversions = new Map();
  for (const e of events) {
    if (e.ts >= start && e.ts < end && (e.event === "cart" || e.event === "purchase")) {
      conversions.set(e.item, (conversions.get(e.item) ?? 0) + 1);
    }
  }
  const top = [...conversions]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
    .slice(0, 500)
    .map(([item]) => item);
  const key = new Map(top.map((id) => [id, fnv1a64(`${date}/${id}`)]));
  return top.sort((a, b) => {
    const ka = key.get(a), kb = key.get(b);
    return ka < kb ? -1 : ka > kb ? 1 : a < b ? -1 : a > b ? 1 : 0;
  });
}
