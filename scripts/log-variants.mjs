// Derives the logs every quality change is measured on (README.md, "Headline figures")
// from one imported log: the same shoppers with whole days removed, with
// most views dropped (purchase-heavy) and with most conversions dropped
// (view-heavy). Rows are kept or dropped by a hash of the row, so the
// variants are the same on every machine.
// Usage: node scripts/log-variants.mjs <data dir> <out dir>
import fs from "node:fs";
import path from "node:path";

const [src, out] = process.argv.slice(2);
if (!out) {
  console.error("usage: node scripts/log-variants.mjs <data dir> <out dir>");
  process.exit(2);
}

// FNV-1a 32-bit of a row: a fixed coin per row.
function coin(row) {
  let h = 0x811c9dc5;
  for (let i = 0; i < row.length; i++) {
    h ^= row.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h / 2 ** 32;
}

const [header, ...rows] = fs.readFileSync(path.join(src, "events.csv"), "utf8").trimEnd().split("\n");
const cols = header.split(",");
const [cEvent, cTs] = [cols.indexOf("event"), cols.indexOf("ts")];
const day = (f) => Math.floor(Number(f[cTs]) / 86400);
const conversion = (f) => f[cEvent] === "cart" || f[cEvent] === "purchase";
const days = [...new Set(rows.map((r) => day(r.split(","))))].sort((a, b) => a - b);

const variants = {
  // Every other day of the first two thirds removed: gaps before the
  // evaluated days, as a shop with outages or a new log has.
  gaps: (f) => {
    const k = days.indexOf(day(f));
    return k >= (2 * days.length) / 3 || k % 2 === 0;
  },
  // Views thinned to 10%: most of what is left converts.
  "purchase-heavy": (f, row) => conversion(f) || coin(row) < 0.1,
  // Conversions thinned to 25%: browsing dominates.
  "view-heavy": (f, row) => !conversion(f) || coin(row) < 0.25,
};

for (const [name, keep] of Object.entries(variants)) {
  const dir = path.join(out, name);
  fs.mkdirSync(dir, { recursive: true });
  const kept = rows.filter((row) => keep(row.split(","), row));
  fs.writeFileSync(path.join(dir, "events.csv"), [header, ...kept].join("\n") + "\n");
  for (const f of ["items.csv", "users.csv"]) {
    if (fs.existsSync(path.join(src, f))) fs.copyFileSync(path.join(src, f), path.join(dir, f));
  }
  console.log(`${dir}: ${kept.length} of ${rows.length} events`);
}
