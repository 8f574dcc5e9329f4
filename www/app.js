// The demo page: show the day's specials, then rerank them on the phone
// from the signals kept in localStorage. Everything that can fail (the wasm,
// the model, storage) fails soft: the default order stays, one warning is
// logged, and the page keeps working.
//
// DOM contract (tests rely on it): the cards are the children of #specials
// in display order, each with data-item-id; #rerank-ms holds the rerank time
// in ms; #model-id the model id; add-to-cart buttons carry data-action="cart".
import init, { SignalStore, loadModel } from "./pkg/index.js";

const HUES = { diapers: 200, formula: 40, feeding: 100, strollers: 260, "car-seats": 0, clothing: 320, toys: 160, maternity: 20 };
const PROFILE_KEY = "nestrank:profile";
const $ = (id) => document.getElementById(id);
const timings = {};
window.nestrank = { timings, ready: false, personalized: false };

const store = new SignalStore();
let catalog = new Map();
let profile = readProfile();

function readProfile() {
  try {
    const p = JSON.parse(localStorage.getItem(PROFILE_KEY) ?? "null");
    return p && typeof p.birthday === "string" && /^\d{4}-\d{2}-\d{2}$/.test(p.birthday) ? p : null;
  } catch {
    return null;
  }
}

// Age in months on `now` (negative: months before the due date), or null.
function ageMonths(p, now = new Date()) {
  if (!p) return null;
  const born = Date.parse(p.birthday + "T00:00:00Z");
  return Number.isFinite(born) ? (now.getTime() - born) / (30.44 * 86400e3) : null;
}

function stageText(p) {
  const m = ageMonths(p);
  if (m === null) return "not set";
  const who = p.gender ? `${p.gender}, ` : "";
  if (m < 0) {
    const weeksLeft = Math.ceil((-m * 30.44) / 7);
    const trimester = weeksLeft > 27 ? "1st" : weeksLeft > 13 ? "2nd" : "3rd";
    return `${who}due in ${weeksLeft} weeks (${trimester} trimester)`;
  }
  return m < 1 ? `${who}newborn` : `${who}${Math.floor(m)} months old`;
}

function ageRange(s) {
  if (s.ageMax <= 0) return "pregnancy";
  if (s.ageMin < 0) return `bump to ${s.ageMax} mo`;
  return `${s.ageMin}-${s.ageMax} mo`;
}

function card(s, reason) {
  const li = document.createElement("li");
  li.className = "card";
  li.dataset.itemId = s.id;
  const m = ageMonths(profile);
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

function render(items, reasons = []) {
  const list = $("specials");
  const frag = document.createDocumentFragment();
  items.forEach((s, k) => frag.append(card(s, reasons[k])));
  list.replaceChildren(frag);
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

function track(itemId, event) {
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
    track(li.dataset.itemId, "cart");
    button.textContent = "Added";
    button.disabled = true;
  } else {
    track(li.dataset.itemId, "view");
    li.classList.add("viewed");
  }
});

$("forget").addEventListener("click", () => {
  store.clear();
  $("status").textContent = "Browsing forgotten: the next visit shows the shop's own order.";
});

function showProfile() {
  $("stage").textContent = stageText(profile);
  if (profile) {
    $("birthday").value = profile.birthday;
    $("gender").value = profile.gender ?? "";
  }
}

$("profile-form").addEventListener("submit", (e) => {
  e.preventDefault();
  const birthday = $("birthday").value;
  const days = (Date.parse(birthday + "T00:00:00Z") - Date.now()) / 86400e3;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(birthday) || !Number.isFinite(days) || days > 290 || days < -6 * 366) {
    $("profile-message").textContent = "Enter a birthday (up to 6 years ago) or a due date (up to 41 weeks ahead).";
    return;
  }
  profile = { birthday, gender: $("gender").value };
  try {
    localStorage.setItem(PROFILE_KEY, JSON.stringify(profile));
  } catch {
    /* kept for this visit only */
  }
  $("profile-message").textContent = "Saved on this phone.";
  showProfile();
});

$("profile-clear").addEventListener("click", () => {
  profile = null;
  try {
    localStorage.removeItem(PROFILE_KEY);
  } catch {
    /* nothing stored */
  }
  $("birthday").value = "";
  showProfile();
});

async function main() {
  showProfile();
  // The wasm and the model load while the specials download; the list is
  // rendered once, reranked, unless that takes long (a slow network), when
  // the shop's own order shows first.
  const ready = (async () => {
    const t = performance.now();
    await init();
    timings.instantiateMs = performance.now() - t;
    return loadModel("model/manifest.json");
  })();
  ready.catch(() => {}); // handled below, after the specials
  let specials;
  try {
    const res = await fetch("data/specials.json");
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
    const signals = store.signals();
    const ids = specials.items.map((s) => s.id);
    const t = performance.now();
    const out = rec.rerank(ids, signals, { explain: true });
    timings.rerankMs = performance.now() - t;
    const show = signals.length > 0;
    clearTimeout(slow);
    render(
      out.items.map((id) => catalog.get(id)),
      show ? out.reasons.map((r, k) => reasonText(r, out.because[k])) : [],
    );
    $("rerank-ms").textContent = timings.rerankMs.toFixed(2);
    $("status").textContent = show ? `Picked for you from ${signals.length} recent taps` : "Shop's picks (browse to personalize)";
    $("timings").textContent = `wasm ${timings.instantiateMs.toFixed(1)} ms · model ${loaded.source} ${timings.decodeMs.toFixed(1)} ms · rerank of ${ids.length} ${timings.rerankMs.toFixed(2)} ms`;
    window.nestrank.personalized = true;
  } catch (e) {
    clearTimeout(slow);
    console.warn(`nestrank: showing the shop's own order: ${e.message}`);
    $("status").textContent = "Shop's picks";
    render(specials.items);
  } finally {
    window.nestrank.ready = true;
  }
}

main();
