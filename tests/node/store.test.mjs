// SignalStore under Node (the same module the page imports): bounds, the
// horizon, corrupt and foreign stored values, clear(), the cookie value, and
// storage that refuses writes. The storage here is a Map behind the Storage
// interface; the page's real localStorage is exercised by tests/e2e.
import { test } from "node:test";
import assert from "node:assert/strict";
import { SignalStore, encodeSignals, decodeSignals } from "../../pkg/node.js";

class MemoryStorage {
  constructor(init = {}) {
    this.map = new Map(Object.entries(init));
  }
  getItem(k) {
    return this.map.has(k) ? this.map.get(k) : null;
  }
  setItem(k, v) {
    this.map.set(k, String(v));
  }
  removeItem(k) {
    this.map.delete(k);
  }
}

function capturingWarn(fn) {
  const warnings = [];
  const orig = console.warn;
  console.warn = (...a) => warnings.push(a.join(" "));
  try {
    return [fn(), warnings];
  } finally {
    console.warn = orig;
  }
}

const T0 = 1_790_000_000;

test("keeps the newest maxEvents, oldest first, and persists them", () => {
  const storage = new MemoryStorage();
  let t = T0;
  const store = new SignalStore({ storage, maxEvents: 5, now: () => t });
  for (let k = 0; k < 8; k++) {
    t += 10;
    store.track(`item${k}`, k === 7 ? "cart" : "view");
  }
  const s = store.signals();
  assert.deepEqual(s.map((x) => x.item), ["item3", "item4", "item5", "item6", "item7"]);
  assert.equal(s[4].event, "cart");
  // A new store on the same storage sees the same signals.
  assert.deepEqual(new SignalStore({ storage, now: () => t }).signals(), s);
  assert.deepEqual(decodeSignals(storage.getItem("nestrank:signals")), s);
});

test("prunes events older than the horizon", () => {
  let t = T0;
  const store = new SignalStore({ storage: new MemoryStorage(), horizonDays: 1, now: () => t });
  store.track("old");
  t += 2 * 86400;
  store.track("new");
  assert.deepEqual(store.signals().map((x) => x.item), ["new"]);
});

test("a corrupt or foreign stored value is discarded with one warning, never thrown", () => {
  const good = encodeSignals([{ item: "a", event: "view", ts: T0 }]);
  const flipped = good.slice(0, 5) + (good[5] === "A" ? "B" : "A") + good.slice(6);
  const foreign = [
    "not a signals text!",
    '{"items":["a"]}',
    flipped,
    good.slice(0, good.length - 3),
    "Ag" + good.slice(2), // another codec version
    "",
  ];
  for (const value of foreign) {
    const storage = new MemoryStorage({ "nestrank:signals": value });
    const [signals, warnings] = capturingWarn(() => new SignalStore({ storage, now: () => T0 }).signals());
    assert.deepEqual(signals, [], `value ${JSON.stringify(value)}`);
    assert.equal(warnings.length, 1, `one warning for ${JSON.stringify(value)}`);
    assert.match(warnings[0], /discarding stored signals/);
    assert.equal(storage.getItem("nestrank:signals"), null, "the bad value is removed");
  }
});

test("clear() forgets everything, in memory and in storage", () => {
  const storage = new MemoryStorage();
  const store = new SignalStore({ storage, now: () => T0 });
  store.track("a");
  store.track("b", "fav");
  store.clear();
  assert.deepEqual(store.signals(), []);
  assert.equal(storage.getItem("nestrank:signals"), null);
  assert.deepEqual(new SignalStore({ storage }).signals(), []);
});

test("toCookie keeps the newest signals that fit and decodes back", () => {
  let t = T0;
  const store = new SignalStore({ storage: new MemoryStorage(), maxEvents: 1024, now: () => t });
  for (let k = 0; k < 600; k++) {
    t += 1;
    store.track(`product-${k}`);
  }
  const cookie = store.toCookie(3800);
  assert.ok(cookie.length <= 3800, `${cookie.length} chars`);
  assert.match(cookie, /^[A-Za-z0-9_-]+$/, "cookie-safe characters only");
  const back = decodeSignals(cookie);
  assert.ok(back.length > 100 && back.length < 600, `${back.length} signals fit`);
  assert.equal(back.at(-1).item, "product-599");
});

test("bad arguments to track throw NestrankArgumentError and keep nothing", () => {
  const store = new SignalStore({ storage: new MemoryStorage(), now: () => T0 });
  for (const args of [[""], [42], ["a", "like"], ["a", "view", NaN], ["x".repeat(300)], ["a\u0001b"]]) {
    assert.throws(() => store.track(...args), { name: "NestrankArgumentError" }, JSON.stringify(args));
  }
  assert.deepEqual(store.signals(), []);
});

test("storage that refuses writes leaves a working in-memory store", () => {
  const storage = new MemoryStorage();
  storage.setItem = () => {
    throw new Error("QuotaExceededError");
  };
  const store = new SignalStore({ storage, now: () => T0 });
  const [, warnings] = capturingWarn(() => store.track("a"));
  assert.equal(warnings.length, 1);
  assert.deepEqual(store.signals().map((x) => x.item), ["a"]);
});

test("encodeSignals/decodeSignals: typed errors at the boundary", () => {
  assert.throws(() => decodeSignals(42), { name: "NestrankArgumentError" });
  assert.throws(() => decodeSignals("%%%"), { name: "NestrankSignalsError", message: /base64url/ });
  assert.throws(() => encodeSignals([{ item: "a", event: "like", ts: 1 }]), {
    name: "NestrankArgumentError",
    message: /signals\[0\]\.event/,
  });
  assert.throws(() => encodeSignals("a"), { name: "NestrankArgumentError" });
});
