// The profile through the wasm package: the golden profile blob loads, the
// stage is computed from `now` (a birthday passes with no new blob), a due
// date gives a pregnancy, and bad input is a named Error.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { Profile } from "../../pkg/node.js";

const day = (d) => Date.parse(d + "T12:00:00Z") / 1000;
// The format version this build writes, from its one definition.
const VERSION = Number(
  /pub const VERSION: u16 = (\d+);/.exec(readFileSync(new URL("../../src/format/mod.rs", import.meta.url), "utf8"))[1],
);

test("the golden v1 profile blob loads in wasm and re-encodes to the same profile", () => {
  const bytes = readFileSync(new URL("../data/golden-profile-v1.nrp", import.meta.url));
  const p = Profile.fromBytes(bytes);
  assert.equal(p.birthday, "2026-05-01");
  assert.equal(p.gender, "boy");
  assert.equal(p.brandWeight("Moonbean"), 1);
  assert.equal(p.brandWeight("Nestling"), 0.5);
  assert.equal(p.categoryWeight("formula"), 0.25);
  assert.deepEqual(Array.from(p.priceBand), [9.5, 31]);
  assert.equal(p.toBytes()[4], VERSION, `re-encoded as the current version (${VERSION})`);
  assert.equal(Profile.fromBytes(p.toBytes()).brandWeight("Moonbean"), 1);
});

test("the stage advances with the clock, without a new profile", () => {
  const p = Profile.fromBirthday("2026-03-15", "girl", day("2026-11-27"));
  assert.deepEqual(p.stageAt(day("2026-12-13")), { kind: "baby", months: 8, days: 273 });
  assert.deepEqual(p.stageAt(day("2026-12-16")), { kind: "baby", months: 9, days: 276 });
  const due = Profile.fromBirthday("2026-12-25", undefined, day("2026-11-27"));
  assert.deepEqual(due.stageAt(day("2026-11-27")), { kind: "pregnancy", trimester: 3, weeksToGo: 4 });
  assert.ok(due.ageMonthsAt(day("2026-11-27")) < 0);
  assert.equal(due.gender, "unknown");
});

test("bad birthdays, genders and blobs are named errors", () => {
  const now = day("2026-11-27");
  for (const [args, pattern] of [
    [["2026-02-30", "girl", now], /`2026-02-30` is not a date YYYY-MM-DD/],
    [["soon", "", now], /is not a date/],
    [[20260101, "", now], /birthday must be a string/],
    [["2028-06-01", "", now], /too far ahead/],
    [["1999-01-01", "", now], /too long ago/],
    [["2026-01-01", "cat", now], /gender `cat` is not girl, boy or unknown/],
    [["2026-01-01", 1, now], /gender must be a string/],
    [["2026-01-01", "", NaN], /now/],
  ]) {
    assert.throws(() => Profile.fromBirthday(...args), { name: "NestrankArgumentError", message: pattern }, JSON.stringify(args));
  }
  const golden = readFileSync(new URL("../data/golden-profile-v1.nrp", import.meta.url));
  const model = readFileSync(new URL("../data/golden-v1.nrk", import.meta.url));
  assert.throws(() => Profile.fromBytes(model), { name: "NestrankDecodeError", message: /kind/ });
  assert.throws(() => Profile.fromBytes(golden.subarray(0, 40)), { name: "NestrankDecodeError" });
  assert.throws(() => Profile.fromBytes("x"), { name: "NestrankArgumentError" });
  const flipped = Buffer.from(golden);
  flipped[60] ^= 4;
  assert.throws(() => Profile.fromBytes(flipped), { name: "NestrankDecodeError", message: /checksum mismatch/ });
  assert.equal(Profile.fromBytes(golden).gender, "boy", "still works");
});
