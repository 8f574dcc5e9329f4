// PORT=<n> npm --prefix edge start: the worker in workerd (miniflare) on
// 127.0.0.1:<n> with the bundled sample page and model.
import { Miniflare } from "miniflare";
import { workerOptions } from "./config.mjs";

const mf = new Miniflare(workerOptions({ port: Number(process.env.PORT ?? 8787) }));
const url = await mf.ready;
console.log(`nestrank edge worker on ${url.href} (GET / and /specials; cookie nr_signals). Ctrl-C to stop.`);
const stop = async () => {
  await mf.dispose();
  process.exit(0);
};
process.on("SIGINT", stop);
process.on("SIGTERM", stop);
