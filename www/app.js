// The demo page: show the day's specials, then rerank them on the phone
// from the signals kept in localStorage. Everything that can fail (the wasm,
// the model, storage) fails soft: the default order stays, one warning is
// logged, and the page keeps working.
//
// DOM contract (tests rely on it): the cards are the children of #specials
// in display order, each with data-item-id; #rerank-ms holds the rerank time
// in ms; #model-id the model id; add-to-cart buttons carry data-action="cart";
// after a tap, #similar-items lists today's specials like the tapped one
// (item-to-item, from the blob's neighbour tables), each with data-item-id;
// window.nestrank.history says whether a nightly profile's embedding ranked,
// window.nestrank.simd whether the engine runs the SIMD build of the core;
// with an experiment, <body data-variant> names the visitor's variant, each
// card carries data-rank (1 = top), and every reported tap, cart and page
// view carries both (window.nestrank.events, "nestrank:event" DOM events).
//
// `make pkg` bundles this file with the package into target/www/app.js
// (esbuild), the script index.html loads: one module instead of six.
import init, { Profile, SignalStore, loadModel, simd, visitorId, wasmUrl } from "nestrank";

// The bundle does not sit next to the package's .wasm files, so the page
// names their folder; the package picks the build (SIMD where the engine
// has it, which index.html preloads).
const WASM_URL = wasmUrl(new URL("pkg/", document.baseURI));

// Everything the first screen needs starts downloading at once: the day's
// specials, and the model (loadModel compiles the wasm while it fetches the
// manifest and the blob).
const specialsResponse = fetch("data/specials.json");
specialsResponse.catch(() => {}); // handled in main()
const modelLoad = loadModel("model/manifest.json", { wasm: WASM_URL });
modelLoad.catch(() => {}); // handled in main()

// A signed-in family's nightly profile (`model-builder users`): the shop's
// page names it with <meta name="nestrank-profile" content="URL">; the demo
// takes ?user=ID. Its embedding carries the family's history to a phone
// that holds none of it. Missing or broken: ranked from this phone alone.
const demoUser = new URLSearchParams(location.search).get("user");
const profileUrl =
  document.querySelector('meta[name="nestrank-profile"]')?.content ??
  (/^[A-Za-z0-9_-]{1,64}$/.test(demoUser ?? "") ? `profile/${demoUser}.nrp` : null);
const nightlyBytes = profileUrl
  ? fetch(profileUrl).then((r) => (r.ok ? r.arrayBuffer() : null), () => null)
  : Promise.resolve(null);

// An A/B experiment (model-builder's README, "Experiments"): the shop's page
// names its JSON with <meta name="nestrank-experiment" content="URL">; the
// demo takes ?experiment=PATH (same origin). Reported events go to
// <meta name="nestrank-report" content="URL"> by sendBeacon, if named.
const experimentParam = new URLSearchParams(location.search).get("experiment");
const experimentUrl =
  document.querySelector('meta[name="nestrank-experiment"]')?.content ??
  (/^[A-Za-z0-9_-][A-Za-z0-9_./-]{0,200}\.json$/.test(experimentParam ?? "") && !experimentParam.includes("..") ? experimentParam : null);
const experimentJson = experimentUrl
  ? fetch(experimentUrl).then((r) => (r.ok ? r.text() : null), () => null)
  : Promise.resolve(null);
const reportUrl = document.querySelector('meta[name="nestrank-report"]')?.content;

const HUES = { diapers: 200, formula: 40, feeding: 100, strollers: 260, "car-seats": 0, clothing: 320, toys: 160, maternity: 20 };
const PROFILE_KEY = "nestrank:profile";
const $ = (id) => document.getElementById(id);
const timings = {};
window.nestrank = { timings, simd, ready: false, personalized: false, history: false, variant: null, events: [] };

const store = new SignalStore();
let catalog = new Map();
let loadedModel = null; // { rec, ids } once the model is in
let profile = readProfile();

function readProfile() {
  try {
    const p = JSON.parse(localStorage.getItem(PROFILE_KEY) ?? "null");
    return p && typeof p.birthday === "string" && /^\d{4}-\d{2}-\d{2}$/.test(p.birthday) ? p : null;
  } catch {
    return null;
  }
}

// The wasm starts loading at once; the profile's stage comes from the core
// (Profile.stageAt), so page and edge agree on it.
let wasmError = null;
const wasm = init({ module_or_path: WASM_URL }).then(() => true, (e) => {
  wasmError = e; // main() reports it, once
  return false;
});
let coreProfile = null; // a Profile once the wasm is in and a profile is saved

function loadCoreProfile() {
  coreProfile?.free();
  coreProfile = null;
  if (!profile) return;
  try {
    coreProfile = Profile.fromBirthday(profile.birthday, profile.gender || "unknown");
  } catch (e) {
    console.warn(`nestrank: ignoring the stored profile: ${e.message}`);
  }
}

// Age in months now (negative: months before the due date), or null.
function ageMonths() {
  return coreProfile?.ageMonthsAt() ?? null;
}

function stageText() {
  const stage = coreProfile?.stageAt();
  if (!stage) return profile ? profile.birthday : "not set";
  const who = coreProfile.gender !== "unknown" ? `${coreProfile.gender}, ` : "";
  if (stage.kind === "pregnancy") {
    const trimester = ["1st", "2nd", "3rd"][stage.trimester - 1];
    return `${who}due in ${stage.weeksToGo} weeks (${trimester} trimester)`;
  }
  return stage.months < 1 ? `${who}newborn` : `${who}${stage.months} months old`;
}

function ageRange(s) {
  if (s.ageMax <= 0) return "pregnancy";
  if (s.ageMin < 0) return `bump to ${s.ageMax} mo`;
  return `${s.ageMin}-${s.ageMax} mo`;
}

function card(s, reason, rank, propensity) {
  const li = document.createElement("li");
  li.className = "card";
  li.dataset.itemId = s.id;
  li.dataset.rank = String(rank);
  if (propensity < 1) li.dataset.propensity = String(propensity); // an exploration slot's draw
  const m = ageMonths();
  const fits = m !== null && m >= s.ageMin - 1 && m <= s.ageMax && (s.gender === "any" || !profile.gender || s.gender === profile.gender);
  const off = Math.round((1 - s.price / s.was) * 100);
  li.innerHTML = `
    <div class="thumb" style="--hue:${HUES[s.top] ?? 0}" aria-hidden="true"></div>
    <div class="info">
      <div class="title"></div>
      <div class="meta"><span class="brand"></span> · ${ageRange(s)}${fits ? ' · <span class="fits">fits now</span>' : ""}</div>
      <div class="price"><b>$${s.price.toFixed(2)}</b> <s>$${s.was.toFixed(2)}</s> <span class="off">-${off}%</span></div>
      <div class="reason"></div>
    </div>
    <button type="button" data-action="cart">Add</button>`;
  li.querySelector(".thumb").textContent = s.category.replace(/-/g, " ");
  li.querySelector(".title").textContent = s.title;
  li.querySelector(".brand").textContent = s.brand;
  li.querySelector(".reason").textContent = reason ?? "";
  return li;
}

// The cards of the first screen render at once; the rest once the browser
// has painted it, a batch per task, so that a phone's main thread stays free
// for taps (and for the model, when the shop's own order shows first).
// Resolves when every card is in, or when a newer render supersedes it.
const FIRST_SCREEN = 10;
const BATCH = 40;
let renders = 0;

function render(items, reasons = [], propensities = []) {
  const run = ++renders;
  const list = $("specials");
  const cards = (from, to) => {
    const frag = document.createDocumentFragment();
    for (let k = from; k < to; k++) frag.append(card(items[k], reasons[k], k + 1, propensities[k] ?? 1));
    return frag;
  };
  list.replaceChildren(cards(0, Math.min(FIRST_SCREEN, items.length)));
  return new Promise((done) => {
    let next = FIRST_SCREEN;
    const batch = () => {
      if (run !== renders || next >= items.length) return done();
      const to = Math.min(next + BATCH, items.length);
      list.append(cards(next, to));
      next = to;
      setTimeout(batch, 0);
    };
    let started = false;
    const start = () => {
      if (!started) (started = true), batch();
    };
    requestAnimationFrame(() => setTimeout(start, 0));
    setTimeout(start, 100); // no frames in a hidden tab
  });
}

function reasonText(reason, becauseId) {
  if (becauseId) return `because you viewed ${catalog.get(becauseId)?.title ?? becauseId}`;
  return reason;
}

// A shop that personalizes at the edge (edge/) opts in with
// <meta name="nestrank-cookie" content="nr_signals">: the signals then also
// go, in the same compact codec, into a first-party cookie its worker reads.
// Off by default: then nothing about the signals leaves the phone.
const cookieName = document.querySelector('meta[name="nestrank-cookie"]')?.content;

// What the shop's analytics hears: a tap, cart or page view with the
// variant that served it and the rank the item was shown at. Nothing else
// about the visitor goes with it.
function report(kind, detail) {
  if (!window.nestrank.variant) return;
  const e = { kind, ...detail, variant: window.nestrank.variant, ts: Math.floor(Date.now() / 1000) };
  window.nestrank.events.push(e);
  document.dispatchEvent(new CustomEvent("nestrank:event", { detail: e }));
  if (reportUrl) navigator.sendBeacon?.(reportUrl, JSON.stringify(e));
}

function track(itemId, event, rank, propensity) {
  report(event, { item: itemId, shownRank: rank, propensity });
  try {
    store.track(itemId, event);
    if (cookieName === "nr_signals") {
      document.cookie = `nr_signals=${store.toCookie(3800)}; Path=/; Max-Age=2592000; SameSite=Lax`;
    }
  } catch (e) {
    console.warn(`nestrank: could not record ${event} of ${itemId}: ${e.message}`);
  }
}

$("specials").addEventListener("click", (e) => {
  const li = e.target.closest(".card");
  if (!li) return;
  const button = e.target.closest("[data-action='cart']");
  if (button) {
    track(li.dataset.itemId, "cart", Number(li.dataset.rank), Number(li.dataset.propensity ?? 1));
    button.textContent = "Added";
    button.disabled = true;
  } else {
    track(li.dataset.itemId, "view", Number(li.dataset.rank), Number(li.dataset.propensity ?? 1));
    li.classList.add("viewed");
    showSimilar(li.dataset.itemId);
  }
});

// Item-to-item on the device: today's specials viewed or bought together
// with the tapped one (a short list is topped up from its category).
function showSimilar(itemId) {
  if (!loadedModel) return;
  try {
    const { rec, ids } = loadedModel;
    const like = rec.similar(itemId, { k: 6, within: ids });
    const goes = rec.similar(itemId, { k: 3, kind: "complement", within: ids });
    const seen = new Set();
    const rows = [];
    for (const r of [goes, like]) {
      r.items.forEach((id, k) => {
        if (!seen.has(id)) {
          seen.add(id);
          rows.push([id, r.reasons[k], r.links[k]]);
        }
      });
    }
    const frag = document.createDocumentFragment();
    for (const [id, reason, link] of rows) {
      const s = catalog.get(id);
      const li = document.createElement("li");
      li.dataset.itemId = id;
      li.title = reason;
      li.innerHTML = `<span class="mini-title"></span><span class="mini-reason"></span>`;
      li.querySelector(".mini-title").textContent = s?.title ?? id;
      li.querySelector(".mini-reason").textContent = link === "complement" ? "goes with it" : "similar";
      frag.append(li);
    }
    $("similar-items").replaceChildren(frag);
    $("similar-of").textContent = catalog.get(itemId)?.title ?? itemId;
    $("similar").hidden = rows.length === 0;
  } catch (e) {
    console.warn(`nestrank: no similar items for ${itemId}: ${e.message}`);
  }
}

$("forget").addEventListener("click", () => {
  store.clear();
  $("status").textContent = "Browsing forgotten: the next visit shows the shop's own order.";
});

function showProfile() {
  $("stage").textContent = stageText();
  if (profile) {
    $("birthday").value = profile.birthday;
    $("gender").value = profile.gender ?? "";
  }
}

// The birthday field becomes a date input when the panel first opens, not
// at load: Chromium builds the date input's calendar icon (an SVG document)
// when the input is first styled, 17-43 ms of a 4x-throttled phone's main
// thread before the first screen, for a panel most visits never open.
$("profile").addEventListener("toggle", () => {
  if ($("profile").open) $("birthday").type = "date";
});

$("profile-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const next = { birthday: $("birthday").value, gender: $("gender").value };
  if (!(await wasm)) {
    $("profile-message").textContent = "The profile needs the page to load fully; try again.";
    return;
  }
  try {
    Profile.fromBirthday(next.birthday, next.gender || "unknown").free(); // the core checks it
  } catch (err) {
    $("profile-message").textContent = `${err.message}.`;
    return;
  }
  profile = next;
  try {
    localStorage.setItem(PROFILE_KEY, JSON.stringify(profile));
  } catch {
    /* kept for this visit only */
  }
  $("profile-message").textContent = "Saved on this phone: reload for picks for this stage.";
  loadCoreProfile();
  showProfile();
});

$("profile-clear").addEventListener("click", () => {
  profile = null;
  loadCoreProfile();
  try {
    localStorage.removeItem(PROFILE_KEY);
  } catch {
    /* nothing stored */
  }
  $("birthday").value = "";
  showProfile();
});

function nightlyProfile(bytes) {
  if (!bytes) return null;
  try {
    return Profile.fromBytes(new Uint8Array(bytes));
  } catch (e) {
    console.warn(`nestrank: ignoring the nightly profile: ${e.message}`);
    return null;
  }
}

// Joins the experiment, if the page runs one: a malformed one is refused
// by the core (one warning) and the page ranks as without it. Returns the
// visitor's variant, also in <body data-variant>.
function joinExperiment(rec, json) {
  if (!json) return null;
  try {
    rec.setExperiment(json);
  } catch (e) {
    console.warn(`nestrank: no experiment: ${e.message}`);
    return null;
  }
  const variant = rec.setVisitor(visitorId({ cookie: cookieName === "nr_signals" })) ?? null;
  window.nestrank.variant = variant;
  if (variant) document.body.dataset.variant = variant;
  return variant;
}

async function main() {
  showProfile();
  // The wasm and the model load while the specials download; the list is
  // rendered once, reranked, unless that takes long (a slow network), when
  // the shop's own order shows first.
  const ready = (async () => {
    const t = performance.now();
    if (!(await wasm)) throw new Error(`the wasm module did not load (${wasmError?.message})`);
    timings.instantiateMs = performance.now() - t;
    loadCoreProfile();
    showProfile();
    return modelLoad;
  })();
  ready.catch(() => {}); // handled below, after the specials
  let specials;
  try {
    const res = await specialsResponse;
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    specials = await res.json();
  } catch (e) {
    $("status").textContent = "Today's specials could not be loaded. Pull to refresh.";
    console.warn(`nestrank demo: cannot load the specials: ${e.message}`);
    window.nestrank.ready = true;
    return;
  }
  catalog = new Map(specials.items.map((s) => [s.id, s]));
  $("day").textContent = specials.date;
  const slow = setTimeout(() => render(specials.items), 800);
  try {
    const loaded = await ready;
    timings.fetchMs = loaded.timings.fetchMs;
    timings.decodeMs = loaded.timings.verifyMs;
    const rec = loaded.recommender;
    $("model-id").textContent = rec.modelId;
    loadedModel = { rec, ids: specials.items.map((s) => s.id) };
    // The baby's stage today, gender and brands feed the scorer: the
    // family's nightly profile if the shop sent one (its embedding for this
    // model), else the one saved on this phone.
    const nightly = nightlyProfile(await nightlyBytes);
    if (nightly) rec.setProfile(nightly);
    else if (coreProfile) rec.setProfile(coreProfile);
    const history = Boolean(nightly) && rec.usesEmbedding;
    nightly?.free();
    window.nestrank.history = history;
    const variant = joinExperiment(rec, await experimentJson);
    const signals = store.signals();
    const ids = specials.items.map((s) => s.id);
    const t = performance.now();
    const out = rec.rerank(ids, signals, { explain: true });
    timings.rerankMs = performance.now() - t;
    report("page", {});
    const control = rec.variantOrder === "shop";
    const show = !control && (signals.length > 0 || coreProfile !== null || history);
    clearTimeout(slow);
    const rendered = render(
      out.items.map((id) => catalog.get(id)),
      show ? out.reasons.map((r, k) => reasonText(r, out.because[k])) : [],
      out.propensities,
    );
    $("rerank-ms").textContent = timings.rerankMs.toFixed(2);
    const from = [signals.length ? `${signals.length} recent taps` : "", history ? "your history" : "", coreProfile ? "your baby's stage" : ""].filter(Boolean).join(" and ");
    $("status").textContent = show ? `Picked for you from ${from}` : control ? "Shop's picks" : "Shop's picks (browse to personalize)";
    $("timings").textContent = `wasm ${timings.instantiateMs.toFixed(1)} ms · model ${loaded.source} ${timings.decodeMs.toFixed(1)} ms · rerank of ${ids.length} ${timings.rerankMs.toFixed(2)} ms`;
    window.nestrank.personalized = true;
    await rendered;
  } catch (e) {
    clearTimeout(slow);
    console.warn(`nestrank: showing the shop's own order: ${e.message}`);
    $("status").textContent = "Shop's picks";
    await render(specials.items);
  } finally {
    window.nestrank.ready = true;
  }
}

main();
