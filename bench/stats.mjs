// Timing statistics shared by the Node and browser benchmarks: after
// warm-up, `rounds` rounds of `runs` samples, each timing `batch` calls
// (browsers coarsen performance.now(), so they time batches). The figure is
// the median of the round medians, robust to a noisy neighbour on a shared
// machine; p99 is over all samples (per-call means of a batch).
export function stats(fn, { rounds = 5, runs = 1000, warm = 300, batch = 1 } = {}) {
  for (let i = 0; i < warm; i++) fn();
  const all = [], medians = [];
  for (let r = 0; r < rounds; r++) {
    const t = [];
    for (let i = 0; i < runs; i++) {
      const a = performance.now();
      for (let k = 0; k < batch; k++) fn();
      t.push((performance.now() - a) / batch);
    }
    t.sort((a, b) => a - b);
    medians.push(t[runs >> 1]);
    all.push(...t);
  }
  medians.sort((a, b) => a - b);
  all.sort((a, b) => a - b);
  return { median_us: medians[rounds >> 1] * 1000, p99_us: all[Math.floor(all.length * 0.99)] * 1000 };
}

/** The median of `xs` (the mean of the middle two for an even count). */
export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}
