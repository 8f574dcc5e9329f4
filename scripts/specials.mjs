// Prints a day's specials (EVAL.md: the items converted that day, in the
// fixed order), one id per line: what the shop would hand the nightly build.
// Usage: node scripts/specials.mjs <events.csv> <YYYY-MM-DD>
import { readEvents, specialsOf } from "./node-pkg.mjs";

const [events, date] = process.argv.slice(2);
if (!date) {
  console.error("usage: node scripts/specials.mjs <events.csv> <YYYY-MM-DD>");
  process.exit(2);
}
console.log(specialsOf(readEvents(events), date).join("\n"));
