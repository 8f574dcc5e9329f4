// The nr_signals cookie: its name, its size cap, and reading it from a
// Cookie header (the first of that name wins).
export const COOKIE = "nr_signals";
export const MAX_COOKIE_CHARS = 4096;

/** The value of cookie `name` in a Cookie header, or null. */
export function readCookie(header, name) {
  if (!header) return null;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return null;
}

/** The visitor id experiments assign by (the package's `visitorId` keeps the same). */
export const VISITOR_COOKIE = "nr_vid";
