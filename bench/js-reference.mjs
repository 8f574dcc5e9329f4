// A plain JavaScript implementation of the nestrank scorer (src/rank.rs,
// src/factors.rs), for the benchmark only: it reads the same blob and ranks
// the same typed inputs, so Node can time it beside the wasm module and show
// what the wasm buys. JS numbers are f64 where the core uses f32, so scores
// agree to about 1e-6 and orders can differ only between near-equal scores.

const SECTION = { items: 1, categories: 2, neighbours: 3, ranker: 4, factors: 5 };
const FEATURES = [
  "own_recency", "own_weight", "own_intent", "own_session", "similarity", "similarity_session",
  "category_count", "category_share", "category_session", "popularity", "trend", "factor",
  "own_weight_session", "category_recency",
];
const NF = FEATURES.length;
const NONE = 0xffffffff;
const MAX_FOLD_ITEMS = 64;
const MAX_SOURCES = 64;
const FOLD_IN_STEPS = 4;

// --- the blob (FORMAT.md): bincode sections, read with a cursor ----------
class Reader {
  constructor(bytes, offset, length) {
    this.v = new DataView(bytes.buffer, bytes.byteOffset + offset, length);
    this.bytes = bytes.subarray(offset, offset + length);
    this.at = 0;
  }
  u32() { const x = this.v.getUint32(this.at, true); this.at += 4; return x; }
  f32() { const x = this.v.getFloat32(this.at, true); this.at += 4; return x; }
  len() { const lo = this.u32(), hi = this.u32(); if (hi) throw new Error("length too large"); return lo; }
  vec(kind) {
    const Type = { u32: Uint32Array, f32: Float32Array, u16: Uint16Array, i8: Int8Array, u8: Uint8Array }[kind];
    const n = this.len(), size = Type.BYTES_PER_ELEMENT;
    // A copy (a Node Buffer's slice would be a view), so the typed array
    // starts aligned.
    const copy = new Uint8Array(this.bytes.subarray(this.at, this.at + n * size));
    this.at += n * size;
    return new Type(copy.buffer);
  }
  strings() {
    const n = this.len();
    const text = new TextDecoder().decode(this.bytes.subarray(this.at, this.at + n));
    this.at += n;
    const ends = this.vec("u32");
    const out = [];
    // Ends are byte offsets; the ids here are ASCII, as in the demo data.
    let start = 0;
    for (const e of ends) { out.push(text.slice(start, e)); start = e; }
    return out;
  }
}

// Version 4's packed table (FORMAT.md): list lengths, 2- or 3-byte
// indices, log-scaled one-byte scores; unpacked to the version 3 layout.
function unpackNeighbours(r, n) {
  const lengths = r.vec("u16"), packed = r.vec("u8"), codes = r.vec("u8"), scale = r.f32();
  const offsets = new Uint32Array(n + 1);
  for (let i = 0; i < n; i++) offsets[i + 1] = offsets[i] + lengths[i];
  const width = n <= 65536 ? 2 : 3, items = new Uint32Array(codes.length);
  for (let k = 0; k < items.length; k++) {
    let v = 0;
    for (let b = width - 1; b >= 0; b--) v = v * 256 + packed[k * width + b];
    items[k] = v;
  }
  const lnMax = Math.log(65535);
  const table = Uint16Array.from({ length: 256 }, (_, c) => (c === 0 ? 0 : Math.min(65535, Math.round(Math.exp(((c - 1) / 254) * lnMax)))));
  const scores = Uint16Array.from(codes, (c) => table[c]);
  return { offsets, items, scores, scale };
}

export function parseModel(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  const count = view.getUint16(20, true);
  const sections = {};
  for (let k = 0; k < count; k++) {
    const id = view.getUint16(24 + 12 * k, true);
    const offset = view.getUint32(24 + 12 * k + 4, true);
    const length = view.getUint32(24 + 12 * k + 8, true);
    sections[id] = new Reader(bytes, offset, length);
  }
  const it = sections[SECTION.items];
  const items = {
    ids: it.strings(), category: it.vec("u32"), conv: it.vec("u32"), trend: it.vec("f32"),
  };
  items.convMax = it.u32();
  items.trendMax = it.f32();
  const categories = sections[SECTION.categories].strings();
  const version = view.getUint16(4, true);
  const nb = sections[SECTION.neighbours];
  const neighbours = version >= 4 ? unpackNeighbours(nb, items.ids.length)
    : { offsets: nb.vec("u32"), items: nb.vec("u32"), scores: nb.vec("u16"), scale: nb.f32() };
  const r = sections[SECTION.ranker];
  const ranker = { eventWeights: r.vec("f32"), hlOwn: r.f32(), hlSim: r.f32(), hlCat: r.f32(), session: r.f32() };
  const names = r.strings(), w = r.vec("f32");
  ranker.weights = new Float64Array(NF);
  names.forEach((n, k) => { ranker.weights[FEATURES.indexOf(n)] = w[k]; });
  let factors = null;
  if (sections[SECTION.factors]) {
    const f = sections[SECTION.factors];
    factors = { dim: f.u32(), codes: f.vec("i8"), scales: f.vec("f32"), gram: f.vec("f32"), reg: f.f32(), alpha: f.f32(), eventWeights: f.vec("f32") };
  }
  const logNorm = (values, max) => {
    const d = Math.log1p(max);
    return Float64Array.from(values, (v) => (d > 0 ? Math.log1p(v) / d : 0));
  };
  return {
    n: items.ids.length, items, categories, neighbours, ranker, factors,
    pop: logNorm(items.conv, items.convMax), trendF: logNorm(items.trend, items.trendMax),
  };
}

// --- the scorer ------------------------------------------------------------
export function makeRanker(model) {
  const { n, neighbours: nb, ranker: p, factors: fa } = model;
  const posOf = new Uint32Array(n).fill(NONE);
  const srcW = new Float64Array(3 * n);
  const catCount = new Uint32Array(model.categories.length);
  const catW = new Float64Array(2 * model.categories.length);
  const catSeen = new Float64Array(model.categories.length).fill(-Infinity);
  const decay = (age, hl) => Math.pow(2, -age / (hl * 3600));
  const dim = fa ? fa.dim : 0;

  function foldIn(items) { // [[item, w]...] -> user vector (CG, as src/factors.rs)
    const x = new Float64Array(dim);
    const rows = items.map(([i]) => Float64Array.from({ length: dim }, (_, q) => fa.codes[i * dim + q] * fa.scales[i]));
    const r = new Float64Array(dim), pv = new Float64Array(dim), ap = new Float64Array(dim);
    items.forEach(([, w], k) => { const c = 1 + fa.alpha * w; for (let q = 0; q < dim; q++) r[q] += c * rows[k][q]; });
    pv.set(r);
    let rsOld = r.reduce((s, v) => s + v * v, 0);
    const tol = rsOld * 1e-10;
    for (let step = 0; step < Math.min(dim, FOLD_IN_STEPS); step++) {
      if (rsOld <= tol || rsOld === 0) break;
      for (let q = 0; q < dim; q++) {
        let s = 0;
        for (let t = 0; t < dim; t++) s += fa.gram[q * dim + t] * pv[t];
        ap[q] = s + fa.reg * pv[q];
      }
      items.forEach(([, w], k) => {
        let d = 0;
        for (let q = 0; q < dim; q++) d += rows[k][q] * pv[q];
        const t = fa.alpha * w * d;
        for (let q = 0; q < dim; q++) ap[q] += t * rows[k][q];
      });
      let pap = 0;
      for (let q = 0; q < dim; q++) pap += pv[q] * ap[q];
      if (!(pap > 0)) break;
      const a = rsOld / pap;
      for (let q = 0; q < dim; q++) { x[q] += a * pv[q]; r[q] -= a * ap[q]; }
      const rsNew = r.reduce((s, v) => s + v * v, 0);
      for (let q = 0; q < dim; q++) pv[q] = r[q] + (rsNew / rsOld) * pv[q];
      rsOld = rsNew;
    }
    return x;
  }

  // Typed inputs as rerankIndices takes them; returns positions, best first.
  return function rerank(candidates, sigItems, sigEvents, sigTs, now) {
    const m = candidates.length;
    const f = new Float64Array(m * NF);
    for (let k = 0; k < m; k++) if (candidates[k] < n && posOf[candidates[k]] === NONE) posOf[candidates[k]] = k;
    const touched = [], cats = [];
    const fe = fa ? fa.eventWeights : [0, 0, 0, 0];
    const sessionS = p.session * 3600;
    let tot0 = 0, tot1 = 0;
    for (let j = 0; j < sigItems.length; j++) {
      const item = sigItems[j], e = sigEvents[j], ts = sigTs[j];
      if (e > 3 || item === NONE || !Number.isFinite(ts)) continue;
      const age = Math.max(0, now - ts), ew = p.eventWeights[e];
      const pos = item < n ? posOf[item] : NONE;
      if (pos !== NONE) {
        const o = pos * NF, d = decay(age, p.hlOwn);
        f[o] = Math.max(f[o], 1 / (1 + age / 3600));
        f[o + 1] += ew * d;
        if (e !== 0) f[o + 2] += d;
        if (age <= sessionS) f[o + 3] += 1;
        f[o + 12] += ew * decay(age, p.session);
      }
      if (item < n) {
        if (srcW[3 * item] === 0 && srcW[3 * item + 1] === 0 && srcW[3 * item + 2] === 0) touched.push(item);
        srcW[3 * item] += ew * decay(age, p.hlSim);
        srcW[3 * item + 1] += ew * decay(age, p.session);
        srcW[3 * item + 2] += fe[e];
        const c = model.items.category[item];
        if (c !== NONE) {
          if (catCount[c] === 0) cats.push(c);
          catCount[c]++;
          catSeen[c] = Math.max(catSeen[c], ts);
          const w0 = ew * decay(age, p.hlCat), w1 = ew * decay(age, p.session);
          catW[2 * c] += w0; catW[2 * c + 1] += w1; tot0 += w0; tot1 += w1;
        }
      }
    }
    // The strongest MAX_SOURCES signal items expand their neighbours; the
    // strongest MAX_FOLD_ITEMS (with a fold weight) fold the user in.
    const sources = touched.map((s) => [srcW[3 * s], s, srcW[3 * s + 1], srcW[3 * s + 2]]);
    for (const s of touched) srcW[3 * s] = srcW[3 * s + 1] = srcW[3 * s + 2] = 0;
    sources.sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    sources.length = Math.min(sources.length, MAX_SOURCES);
    for (const [wLong, s, wShort] of sources) {
      const wl = wLong * nb.scale, ws = wShort * nb.scale;
      for (let k = nb.offsets[s]; k < nb.offsets[s + 1]; k++) {
        const pos = posOf[nb.items[k]];
        if (pos !== NONE) { f[pos * NF + 4] += wl * nb.scores[k]; f[pos * NF + 5] += ws * nb.scores[k]; }
      }
    }
    let user = null;
    const fold = sources.filter((x) => x[3] > 0).slice(0, MAX_FOLD_ITEMS);
    if (fa && p.weights[11] !== 0 && fold.length) {
      user = foldIn(fold.map(([, s, , w]) => [s, w]).sort((a, b) => a[0] - b[0]));
    }
    const scores = new Float64Array(m);
    for (let k = 0; k < m; k++) {
      const item = candidates[k], o = k * NF;
      if (item < n) {
        const first = posOf[item];
        if (first !== k) { for (let q = 0; q < NF; q++) f[o + q] = f[first * NF + q]; }
        else {
          f[o + 3] = Math.log1p(f[o + 3]);
          const c = model.items.category[item];
          if (c !== NONE && catCount[c] > 0) {
            f[o + 6] = Math.log1p(catCount[c]);
            f[o + 7] = tot0 > 1.1754943508222875e-38 ? Math.min(1, catW[2 * c] / tot0) : 0;
            f[o + 8] = tot1 > 1.1754943508222875e-38 ? Math.min(1, catW[2 * c + 1] / tot1) : 0;
            f[o + 13] = 1 / (1 + Math.max(0, now - catSeen[c]) / 3600);
          }
          f[o + 9] = model.pop[item];
          f[o + 10] = model.trendF[item];
          if (user) {
            let s = 0;
            for (let q = 0; q < dim; q++) s += fa.codes[item * dim + q] * user[q];
            f[o + 11] = s * fa.scales[item];
          }
        }
      }
      let s = 0;
      for (let q = 0; q < NF; q++) s += f[o + q] * p.weights[q];
      scores[k] = s;
    }
    for (let k = 0; k < m; k++) if (candidates[k] < n) posOf[candidates[k]] = NONE;
    for (const c of cats) { catCount[c] = 0; catW[2 * c] = catW[2 * c + 1] = 0; catSeen[c] = -Infinity; }
    const order = Uint32Array.from({ length: m }, (_, k) => k);
    return order.sort((a, b) => scores[b] - scores[a] || a - b);
  };
}
