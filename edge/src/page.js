// The specials page markup, shared by the sample origin page
// (scripts/make-sample.mjs) and the worker's rewrite, so a reordered card
// is byte for byte the card the origin rendered.
const ESC = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };
export const escapeHtml = (s) => String(s).replace(/[&<>"']/g, (c) => ESC[c]);

export function renderCard(item, reason = "") {
  const off = Math.round((1 - item.price / item.was) * 100);
  return `<li class="card" data-item-id="${escapeHtml(item.id)}"><div class="title">${escapeHtml(item.title)}</div>` +
    `<div class="meta">${escapeHtml(item.brand)} · ${escapeHtml(item.category)}</div>` +
    `<div class="price"><b>$${item.price.toFixed(2)}</b> <s>$${item.was.toFixed(2)}</s> -${off}%</div>` +
    (reason ? `<div class="reason">${escapeHtml(reason)}</div>` : "") +
    `<button type="button" data-action="cart">Add</button></li>\n`;
}

export function renderPage(specials) {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Little Nest · Today's specials ${escapeHtml(specials.date)}</title>
</head>
<body>
<h1>Today's specials <span id="day">${escapeHtml(specials.date)}</span></h1>
<p>model <code id="model-id">none</code></p>
<ol id="specials">
${specials.items.map((s) => renderCard(s)).join("")}</ol>
</body>
</html>
`;
}
