// The version 4 golden cases (tests/data/golden-v4-cases.json) through the
// package's API: one runner for every engine (Node, Bun, Chromium, WebKit,
// workerd), compared with what the native core recorded
// (tests/data/golden-v4-expected.json, written by `make golden`). Plain
// ECMAScript: no Node, browser or Workers API.

/**
 * Runs every case; `nestrank` is the initialized package ({Recommender,
 * Profile}), `profiles` the bytes of each file in `spec.profiles`, in order.
 */
export function runGolden({ Recommender, Profile }, blob, profiles, spec) {
  const byName = new Map(spec.profiles.map((file, k) => [file.replace(/\.nrp$/, ""), profiles[k]]));
  return spec.cases.map((c) => {
    const rec = Recommender.fromBytes(blob);
    try {
      if ("rules" in c) rec.setRules(c.rules === null ? null : JSON.stringify(c.rules));
      if (c.user_key) rec.setUserKey(c.user_key);
      if (c.profile) {
        const profile =
          typeof c.profile === "string"
            ? Profile.fromBytes(byName.get(c.profile))
            : Profile.fromBirthday(c.profile.birthday, c.profile.gender, c.now);
        rec.setProfile(profile);
        profile.free();
      }
      const out = rec.rerank(spec.candidates, c.signals, { now: c.now, explain: true });
      const similar = (c.similar ?? []).map((q) => {
        const r = rec.similar(q.item, { k: q.k, kind: q.kind });
        return { items: r.items, scores: Array.from(r.scores), reasons: r.reasons, links: r.links };
      });
      return {
        name: c.name,
        items: out.items,
        scores: Array.from(out.scores),
        reasons: out.reasons,
        because: out.because,
        similar,
      };
    } finally {
      rec.free();
    }
  });
}

/** Every difference from the recorded results: orders, reasons and links exactly, scores within 1e-6. */
export function goldenDifferences(actual, expected) {
  const out = [];
  const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
  const close = (a, b, what) => {
    if (a.length !== b.length) return out.push(`${what}: ${a.length} scores, recorded ${b.length}`);
    a.forEach((x, i) => {
      if (!(Math.abs(x - b[i]) <= 1e-6)) out.push(`${what}: score ${i} is ${x}, recorded ${b[i]}`);
    });
  };
  if (actual.length !== expected.length) out.push(`${actual.length} cases, recorded ${expected.length}`);
  expected.forEach((e, k) => {
    const a = actual[k];
    if (!a) return;
    for (const key of ["name", "items", "reasons", "because"]) {
      if (!same(a[key], e[key])) out.push(`${e.name}: ${key} differ`);
    }
    close(a.scores, e.scores, e.name);
    if (a.similar.length !== e.similar.length) return out.push(`${e.name}: ${a.similar.length} similar lists, recorded ${e.similar.length}`);
    e.similar.forEach((s, j) => {
      for (const key of ["items", "reasons", "links"]) {
        if (!same(a.similar[j][key], s[key])) out.push(`${e.name}: similar ${j} ${key} differ`);
      }
      close(a.similar[j].scores, s.scores, `${e.name}: similar ${j}`);
    });
  });
  return out;
}
