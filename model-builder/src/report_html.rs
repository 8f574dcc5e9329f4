//! The experiment report as one self-contained HTML file: inline CSS and
//! SVG charts, no script, nothing fetched when it is viewed.

use crate::report::{Report, MAX_RANK};
use std::fmt::Write as _;

/// What the report shows beside the experiment, where given.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// The blob: its id, day, learned weights by feature, bytes by section.
    pub model: Option<ModelFacts>,
    /// `eval --json`'s output: the offline replay per day and ranker.
    pub replay: Option<serde_json::Value>,
}

/// What the report shows of a blob.
#[derive(Debug, Clone)]
pub struct ModelFacts {
    /// The model id.
    pub id: String,
    /// Its day, `YYYY-MM-DD`.
    pub as_of: String,
    /// (feature, weight) of the shipped ranker.
    pub weights: Vec<(String, f32)>,
    /// (section, bytes).
    pub sections: Vec<(String, usize)>,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const COLOURS: [&str; 6] = [
    "#8c8c8c", "#d9480f", "#1c7ed6", "#2b8a3e", "#ae3ec9", "#f08c00",
];

/// One bar: a label, a value and an interval around it.
type Bar = (String, f64, Option<(f64, f64)>);

/// A horizontal bar chart: one row per (label, value, interval); a zero
/// line where values or intervals go negative.
fn bars(rows: &[Bar], first_colour: usize, format: &dyn Fn(f64) -> String) -> String {
    let (label_w, bar_w, row_h) = (170.0, 420.0, 24.0);
    let mut lo: f64 = 0.0;
    let mut hi: f64 = 0.0;
    for (_, v, ci) in rows {
        lo = lo.min(*v);
        hi = hi.max(*v);
        if let Some((a, b)) = ci {
            lo = lo.min(*a);
            hi = hi.max(*b);
        }
    }
    if hi - lo <= 0.0 {
        hi = lo + 1.0;
    }
    let x = |v: f64| label_w + (v - lo) / (hi - lo) * bar_w;
    let height = row_h * rows.len() as f64 + 10.0;
    let mut svg = format!(
        r#"<svg role="img" width="{w}" height="{height}" viewBox="0 0 {w} {height}" xmlns="http://www.w3.org/2000/svg">"#,
        w = label_w + bar_w + 110.0
    );
    for (k, (label, v, ci)) in rows.iter().enumerate() {
        let y = k as f64 * row_h + 5.0;
        let (a, b) = (x(0.0_f64.max(lo)).min(x(*v)), x(0.0_f64.max(lo)).max(x(*v)));
        let _ = write!(
            svg,
            r#"<text x="{tx}" y="{ty}" text-anchor="end">{l}</text><rect x="{a:.1}" y="{y:.1}" width="{w:.1}" height="{h}" fill="{c}"/>"#,
            tx = label_w - 6.0,
            ty = y + row_h * 0.62,
            l = esc(label),
            w = (b - a).max(1.0),
            h = row_h - 8.0,
            c = COLOURS[(first_colour + k) % COLOURS.len()]
        );
        let mut end = x(*v).max(x(0.0_f64.max(lo)));
        if let Some((l, h)) = ci {
            let cy = y + (row_h - 8.0) / 2.0;
            let _ = write!(
                svg,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{cy:.1}" y2="{cy:.1}" stroke="#222" stroke-width="1.5"/><line x1="{0:.1}" x2="{0:.1}" y1="{:.1}" y2="{:.1}" stroke="#222"/><line x1="{1:.1}" x2="{1:.1}" y1="{2:.1}" y2="{3:.1}" stroke="#222"/>"##,
                x(*l),
                x(*h),
                cy - 5.0,
                cy + 5.0
            );
            end = end.max(x(*h));
        }
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            end + 6.0,
            y + row_h * 0.62,
            esc(&format(*v))
        );
    }
    if lo < 0.0 {
        let _ = write!(
            svg,
            r##"<line x1="{z:.1}" x2="{z:.1}" y1="0" y2="{height}" stroke="#444" stroke-dasharray="3 3"/>"##,
            z = x(0.0)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Lines over ranks 1..=MAX_RANK, one per series, with a legend.
fn lines(series: &[(String, Vec<f64>)], y_label: &str) -> String {
    let (w, h, left, bottom) = (620.0, 240.0, 50.0, 30.0);
    let top = series
        .iter()
        .flat_map(|s| s.1.iter().copied())
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let x = |r: usize| left + (r as f64) / (MAX_RANK - 1) as f64 * (w - left - 160.0);
    let y = |v: f64| (h - bottom) - v / top * (h - bottom - 10.0);
    let mut svg = format!(
        r##"<svg role="img" width="{w}" height="{h}" viewBox="0 0 {w} {h}" xmlns="http://www.w3.org/2000/svg"><line x1="{left}" x2="{left}" y1="10" y2="{b}" stroke="#444"/><line x1="{left}" x2="{w}" y1="{b}" y2="{b}" stroke="#444"/><text x="4" y="14">{top:.3}</text><text x="4" y="{b}">0</text><text x="{left}" y="{h1}">rank 1</text><text x="{xr}" y="{h1}" text-anchor="end">rank {MAX_RANK}</text><text x="{mid}" y="{h1}" text-anchor="middle">{yl}</text>"##,
        b = h - bottom,
        h1 = h - 8.0,
        xr = w - 160.0,
        mid = w / 2.0,
        yl = esc(y_label)
    );
    for (k, (name, values)) in series.iter().enumerate() {
        let points: Vec<String> = values
            .iter()
            .enumerate()
            .map(|(r, &v)| format!("{:.1},{:.1}", x(r), y(v)))
            .collect();
        let c = COLOURS[k % COLOURS.len()];
        let _ = write!(
            svg,
            r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/><text x="{:.1}" y="{:.1}" style="fill:{c}">{}</text>"#,
            points.join(" "),
            w - 140.0,
            24.0 + 16.0 * k as f64,
            esc(name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// A weight this large is a rule, not a blend weight.
const RULE_WEIGHT: f32 = 1e4;

fn pct(x: f64) -> String {
    format!("{:.2}%", 100.0 * x)
}

/// The report as HTML.
pub fn render(r: &Report, extras: &Extras, title: &str) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>{t}</title><style>
body{{font:15px/1.45 system-ui,sans-serif;margin:24px auto;max-width:900px;padding:0 16px;color:#222}}
h1{{font-size:24px}} h2{{font-size:19px;margin-top:32px;border-bottom:1px solid #ddd}}
table{{border-collapse:collapse;margin:8px 0}} td,th{{padding:4px 10px;border-bottom:1px solid #eee;text-align:right}} td:first-child,th:first-child{{text-align:left}}
.verdict{{font-size:18px;padding:10px 14px;border-radius:6px;margin:6px 0;background:#f1f3f5}} .win{{background:#d3f9d8}} .loss{{background:#ffe3e3}}
svg text{{font:12px system-ui,sans-serif;fill:#222}} .note{{color:#666;font-size:13px}}
</style></head><body><h1>{t}</h1>"#,
        t = esc(title)
    );
    let _ = write!(
        h,
        r#"<p class="note">Experiment <b>{}</b>; baseline <b>{}</b>; {:.0}% intervals from {} bootstrap resamples of visitors. Visitors counted from {}{}.</p>"#,
        esc(r.experiment.as_deref().unwrap_or("(unnamed)")),
        esc(&r.baseline),
        100.0 * r.confidence,
        r.bootstrap,
        r.visitors_from,
        if r.visitors_from == "events" {
            " (tagged events only: visitors who never tapped are missing, so rates are too high)"
        } else {
            ""
        }
    );
    h.push_str("<h2>Verdict</h2>");
    for name in &r.order[1..] {
        match r.lift.get(name) {
            Some(l) => {
                let class = match (l.significant, l.estimate > 0.0) {
                    (true, true) => "verdict win",
                    (true, false) => "verdict loss",
                    _ => "verdict",
                };
                let _ = write!(h, r#"<div class="{class}">{}</div>"#, esc(&l.verdict));
            }
            None => {
                let _ = write!(
                    h,
                    r#"<div class="verdict">{}: no lift: the baseline has no conversion yet</div>"#,
                    esc(name)
                );
            }
        }
    }
    h.push_str("<h2>Per variant</h2><table><tr><th>variant</th><th>visitors</th><th>pages</th><th>bought</th><th>conversion per visitor</th><th>interval</th><th>orders</th><th>revenue per visitor</th></tr>");
    for name in &r.order {
        let v = &r.variants[name];
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>[{}, {}]</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            v.visitors,
            v.pages,
            v.converted,
            pct(v.conversion_rate),
            pct(v.conversion_interval[0]),
            pct(v.conversion_interval[1]),
            v.orders,
            v.revenue_per_visitor
                .map_or("(prices unknown)".to_string(), |x| format!("{x:.2}"))
        );
    }
    h.push_str("</table><h3>Conversion rate per visitor</h3>");
    let rows: Vec<_> = r
        .order
        .iter()
        .map(|n| {
            let v = &r.variants[n];
            (
                n.clone(),
                v.conversion_rate,
                Some((v.conversion_interval[0], v.conversion_interval[1])),
            )
        })
        .collect();
    h.push_str(&bars(&rows, 0, &pct));
    if !r.lift.is_empty() {
        h.push_str("<h3>Lift against the baseline</h3>");
        let rows: Vec<_> = r.order[1..]
            .iter()
            .filter_map(|n| {
                r.lift
                    .get(n)
                    .map(|l| (n.clone(), l.estimate, Some((l.lo, l.hi))))
            })
            .collect();
        h.push_str(&bars(&rows, 1, &|x| format!("{:+.1}%", 100.0 * x)));
    }
    h.push_str("<h3>Taps by the rank the item was shown at, per 100 pages</h3>");
    let series: Vec<(String, Vec<f64>)> = r
        .order
        .iter()
        .map(|n| {
            let v = &r.variants[n];
            let pages = v.pages.max(1) as f64;
            (
                n.clone(),
                v.clicks_by_rank
                    .iter()
                    .map(|&c| 100.0 * c as f64 / pages)
                    .collect(),
            )
        })
        .collect();
    h.push_str(&lines(&series, "taps per 100 pages"));
    h.push_str("<p class=\"note\">Beyond the chart: ");
    let beyond: Vec<String> = r
        .order
        .iter()
        .map(|n| {
            let v = &r.variants[n];
            format!(
                "{}: {} taps below rank {MAX_RANK}, {} with no rank",
                esc(n),
                v.clicks_below,
                v.clicks_unranked
            )
        })
        .collect();
    h.push_str(&beyond.join("; "));
    h.push_str(".</p>");
    if let Some(replay) = &extras.replay {
        h.push_str(&replay_section(replay));
    }
    if let Some(m) = &extras.model {
        let _ = write!(
            h,
            "<h2>The blob</h2><p>Model <code>{}</code>, as of {}.</p><h3>Learned feature weights</h3>",
            esc(&m.id),
            esc(&m.as_of)
        );
        // A weight of 1e5 is a rule (own items first), not a blend weight:
        // say so in words and keep it out of the bars' scale.
        let rules: Vec<&(String, f32)> = m
            .weights
            .iter()
            .filter(|(_, w)| w.abs() >= RULE_WEIGHT)
            .collect();
        let rows: Vec<_> = m
            .weights
            .iter()
            .map(|(n, w)| {
                let w = f64::from(*w);
                let w = if w.abs() >= f64::from(RULE_WEIGHT) {
                    w % 1e5
                } else {
                    w
                };
                (n.clone(), w, None)
            })
            .collect();
        h.push_str(&bars(&rows, 2, &|x| format!("{x:.3}")));
        if !rules.is_empty() {
            let names: Vec<String> = rules.iter().map(|(n, _)| esc(n)).collect();
            let _ = write!(
                h,
                "<p class=\"note\">{} also carries the recency-first rule (+100,000: the user's own items first); shown without it.</p>",
                names.join(", ")
            );
        }
        h.push_str("<h3>Bytes by section</h3>");
        let rows: Vec<_> = m
            .sections
            .iter()
            .map(|(n, b)| (n.clone(), *b as f64, None))
            .collect();
        h.push_str(&bars(&rows, 0, &|x| format!("{:.1} KB", x / 1024.0)));
    }
    h.push_str("</body></html>\n");
    h
}

/// The offline replay: NDCG@10 per ranker overall, and per day.
fn replay_section(replay: &serde_json::Value) -> String {
    let mut h = String::from("<h2>Offline replay (EVAL.md)</h2>");
    let Some(rankers) = replay["rankers"].as_object() else {
        h.push_str("<p class=\"note\">The replay file holds no rankers.</p>");
        return h;
    };
    let _ = write!(
        h,
        "<p class=\"note\">{} cases; each case's phone holds <code>{}</code> signals.</p>",
        replay["cases"],
        esc(replay["signals"].as_str().unwrap_or("?"))
    );
    let mut names: Vec<&String> = rankers.keys().collect();
    names.sort_by(|a, b| {
        let v = |n: &str| rankers[n]["ndcg10"].as_f64().unwrap_or(0.0);
        v(b).total_cmp(&v(a))
    });
    let rows: Vec<_> = names
        .iter()
        .map(|n| {
            (
                n.to_string(),
                rankers[*n]["ndcg10"].as_f64().unwrap_or(0.0),
                None,
            )
        })
        .collect();
    h.push_str("<h3>NDCG@10 over every case</h3>");
    h.push_str(&bars(&rows, 0, &|x| format!("{x:.4}")));
    h.push_str("<h3>Per day</h3><table><tr><th>day</th><th>cases</th><th>shipped</th>");
    for n in &names {
        let _ = write!(h, "<th>{}</th>", esc(n));
    }
    h.push_str("</tr>");
    for d in replay["days"].as_array().into_iter().flatten() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td>",
            esc(d["date"].as_str().unwrap_or("?")),
            d["cases"],
            esc(d["shipped"].as_str().unwrap_or("?"))
        );
        for n in &names {
            let _ = write!(
                h,
                "<td>{:.4}</td>",
                d["rankers"][n.as_str()]["ndcg10"]
                    .as_f64()
                    .unwrap_or(f64::NAN)
            );
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
    h
}
