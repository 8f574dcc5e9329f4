// Runs before `npm start` / `npm test`: installs miniflare (with workerd)
// from the lock file if it is not there yet, so `npm --prefix edge start`
// works on a fresh clone (after `make pkg`).
import { existsSync } from "node:fs";
import { execSync } from "node:child_process";
import { fileURLToPath } from "node:url";

const edge = fileURLToPath(new URL("..", import.meta.url));
if (!existsSync(`${edge}node_modules/miniflare/package.json`)) {
  console.log("installing miniflare (npm ci) ...");
  execSync("npm ci --no-audit --no-fund", { cwd: edge, stdio: "inherit" });
}
