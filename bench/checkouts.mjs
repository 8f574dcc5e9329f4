// The page benchmarks' checkouts: this one, and with BASELINE=DIR another
// (its pkg/ built, its out/ the same as this one's), each served on its own
// port on 127.0.0.1, so a bench can measure both in one run, alternating,
// and the VM's noise falls on both alike.
import { serve } from "../scripts/serve.mjs";

/** `[{ name, server }]`: this checkout first, then BASELINE's if set. */
export async function servedCheckouts() {
  const variants = [{ name: "this checkout", server: await serve({ port: 0 }) }];
  if (process.env.BASELINE) {
    const other = await import(new URL(`file://${process.env.BASELINE.replace(/\/?$/, "/")}scripts/serve.mjs`));
    variants.push({ name: `baseline (${process.env.BASELINE})`, server: await other.serve({ port: 0 }) });
  }
  return variants;
}
