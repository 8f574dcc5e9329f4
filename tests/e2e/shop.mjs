// What both browser tests (Chromium, WebKit) know about the synthetic shop's
// page: its specials, their brands, and which brand a test browses.
import { readFileSync } from "node:fs";

const root = new URL("../../", import.meta.url);
export const specials = JSON.parse(readFileSync(new URL("out/shop/specials.json", root), "utf8"));
export const defaultOrder = specials.items.map((s) => s.id);
export const brandOf = new Map(specials.items.map((s) => [s.id, s.brand]));

/** The mean display position of `brand`'s items in `order`. */
export function meanPosition(order, brand) {
  const pos = order.flatMap((id, k) => (brandOf.get(id) === brand ? [k] : []));
  return pos.reduce((a, b) => a + b, 0) / pos.length;
}

/**
 * The brand furthest down `order` (among brands with at least 10 specials),
 * its mean position, and four of its items from the lower half to tap.
 */
export function brandToBrowse(order) {
  const counts = new Map();
  for (const id of order) counts.set(brandOf.get(id), (counts.get(brandOf.get(id)) ?? 0) + 1);
  const brand = [...counts].filter(([, n]) => n >= 10).map(([b]) => b)
    .sort((a, b) => meanPosition(order, b) - meanPosition(order, a))[0];
  const tapped = order.filter((id, k) => brandOf.get(id) === brand && k > order.length / 2).slice(0, 4);
  return { brand, before: meanPosition(order, brand), tapped };
}
