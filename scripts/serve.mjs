// A small static server for the demo page (no dependencies): / is www/,
// with its script the bundle `make pkg` writes (target/www/app.js),
// /pkg/ the built package, /model/ the published model (manifest + blob),
// /data/ the shop's specials of the day, /profile/ID.nrp a family's nightly
// profile from `model-builder users` (the demo's stand-in for a signed-in
// endpoint). Binds 127.0.0.1 only.
// Usage: node scripts/serve.mjs [--port 8080] [--model out/shop-model] [--data out/shop] [--users out/shop-users]
import { createServer } from "node:http";
import { readFile, stat } from "node:fs/promises";
import { resolve, extname, join, sep } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("..", import.meta.url));

const TYPES = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".mjs": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".nrk": "application/octet-stream",
  ".nrp": "application/octet-stream",
  ".ts": "text/plain; charset=utf-8",
  ".png": "image/png",
  ".svg": "image/svg+xml",
};

/** Starts the server; resolves to `{ url, close() }`. */
/** Where `users` put family `id`'s profile: profiles/HH/HH/ID.nrp, HHHH the FNV-1a 64 of the id. */
function profilePath(id) {
  let h = 0xcbf29ce484222325n;
  for (const b of new TextEncoder().encode(id)) h = ((h ^ BigInt(b)) * 0x100000001b3n) & 0xffffffffffffffffn;
  const hex = h.toString(16).padStart(16, "0");
  return `profiles/${hex.slice(0, 2)}/${hex.slice(2, 4)}/${id}.nrp`;
}

export async function serve({ port = 8080, model = "out/shop-model", data = "out/shop", users = "out/shop-users", log = false, tests = false } = {}) {
  const bundle = resolve(root, "target/www/app.js");
  const [built, source] = await Promise.all([stat(bundle).catch(() => null), stat(resolve(root, "www/app.js"))]);
  if (!built || built.mtimeMs < source.mtimeMs) {
    throw new Error(`${bundle} is ${built ? "older than www/app.js" : "missing"}: run \`make pkg\` (it bundles the page's script)`);
  }
  const mounts = [
    // The golden cases' page and data, for the browser tests only.
    ...(tests ? [["/tests/", resolve(root, "tests")]] : []),
    ["/pkg/", resolve(root, "pkg")],
    ["/model/", resolve(root, model)],
    ["/data/", resolve(root, data)],
    ["/users/", resolve(root, users)],
    ["/", resolve(root, "www")],
  ];
  const server = createServer(async (req, res) => {
    let path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const family = path.match(/^\/profile\/([A-Za-z0-9_-]{1,64})\.nrp$/);
    if (family) path = `/users/${profilePath(family[1])}`;
    const [prefix, dir] = mounts.find(([p]) => path.startsWith(p));
    let file = path === "/app.js" ? bundle : resolve(join(dir, path.slice(prefix.length) || "index.html"));
    if (file !== bundle && file !== dir && !file.startsWith(dir + sep)) {
      res.writeHead(403).end("forbidden");
      return;
    }
    try {
      // A validator, as any static host sends: a revisit revalidates each
      // file (304, no body) instead of downloading it again.
      const st = await stat(file);
      const etag = `"${st.size.toString(16)}-${Math.floor(st.mtimeMs).toString(16)}"`;
      const headers = {
        "content-type": TYPES[extname(file)] ?? "application/octet-stream",
        // Content-addressed blobs never change; everything else is revalidated.
        "cache-control": file.endsWith(".nrk") ? "public, max-age=31536000, immutable" : "no-cache",
        etag,
      };
      if (req.headers["if-none-match"] === etag) {
        res.writeHead(304, headers).end();
        if (log) console.log(`304 ${path}`);
        return;
      }
      const body = await readFile(file);
      res.writeHead(200, headers);
      res.end(body);
      if (log) console.log(`200 ${path}`);
    } catch {
      res.writeHead(404, { "content-type": "text/plain" }).end("not found");
      if (log) console.log(`404 ${path}`);
    }
  });
  await new Promise((ok, fail) => {
    server.once("error", fail);
    server.listen(port, "127.0.0.1", ok);
  });
  return {
    url: `http://127.0.0.1:${server.address().port}/`,
    close: () => new Promise((ok) => server.close(ok)),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name, dflt) => {
    const k = process.argv.indexOf(`--${name}`);
    return k > 0 ? process.argv[k + 1] : dflt;
  };
  const s = await serve({ port: Number(arg("port", 8080)), model: arg("model", "out/shop-model"), data: arg("data", "out/shop"), users: arg("users", "out/shop-users") });
  console.log(`nestrank demo page: ${s.url}  (Ctrl-C to stop)`);
}
