//! The report as one self-contained HTML page: inline CSS and inline SVG
//! charts, no script and no fetch.
//!
//! Every number shown is tied to the JSON report: an element carrying a
//! figure has `data-json`, a JSON pointer into the report, and either shows
//! the value itself (thousands separators aside) or, for chart marks and
//! percentages, carries it in `data-value`. The browser test
//! (`tools/browser/test_backtest_report.py`) checks each one.

use std::fmt::Write as _;

use crate::report::*;

/// Colours of scenarios and series, in order.
const PALETTE: [&str; 8] = ["#4f46e5", "#0891b2", "#db2777", "#ea580c", "#16a34a", "#9333ea", "#ca8a04", "#475569"];

const CSS: &str = r#"
:root{--bg:#f5f6fa;--card:#fff;--ink:#1f2433;--muted:#6b7280;--line:#e5e7eb;--accent:#4f46e5;--accent2:#0891b2;--warn:#dc2626}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif}
header.top{background:linear-gradient(120deg,#312e81,#4f46e5 55%,#0891b2);color:#fff;padding:28px 40px 24px}
header.top h1{margin:0 0 6px;font-size:26px;font-weight:650;letter-spacing:-.01em}
header.top p{margin:0;opacity:.88}
main{max-width:1240px;margin:0 auto;padding:24px 28px 60px}
section{margin:0 0 28px}
h2{font-size:19px;margin:28px 0 12px;font-weight:650}
h3{font-size:16px;margin:0 0 4px;font-weight:650}
h4{font-size:13px;margin:14px 0 6px;color:var(--muted);font-weight:600;text-transform:uppercase;letter-spacing:.04em}
.card{background:var(--card);border-radius:14px;box-shadow:0 1px 2px rgba(16,24,40,.06),0 1px 3px rgba(16,24,40,.08);padding:18px 20px;margin:0 0 18px}
.kpis{display:grid;grid-template-columns:repeat(auto-fit,minmax(170px,1fr));gap:12px;margin:0 0 18px}
.kpi{background:var(--card);border-radius:12px;padding:14px 16px;box-shadow:0 1px 2px rgba(16,24,40,.06)}
.kpi .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.kpi .value{font-size:22px;font-weight:650;margin-top:4px;font-variant-numeric:tabular-nums}
.kpi .value .unit{font-size:13px;color:var(--muted);font-weight:500;margin-left:4px}
.kpi .sub{color:var(--muted);font-size:12px;margin-top:2px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:6px 10px;text-align:left;border-bottom:1px solid var(--line);vertical-align:top}
th{font-size:12px;color:var(--muted);font-weight:600;text-transform:uppercase;letter-spacing:.03em;background:#fafbfc}
td.n,th.n{text-align:right;white-space:nowrap}
tr:hover td{background:#f8f9ff}
.terms{color:var(--muted);font-size:12px}
th .terms{text-transform:none;font-weight:400;letter-spacing:0}
.unit{color:var(--muted)}
.muted{color:var(--muted)}
.pill{display:inline-block;padding:1px 8px;border-radius:999px;font-size:11px;font-weight:600;background:#eef2ff;color:#3730a3}
.pill.points{background:#ecfeff;color:#155e75}
.pill.out{background:#fee2e2;color:#991b1b}
.grid2{display:grid;grid-template-columns:1.6fr 1fr;gap:18px}
.grid3{display:grid;grid-template-columns:1fr 1fr 1fr;gap:18px}
@media (max-width:900px){.grid2,.grid3{grid-template-columns:1fr}}
svg.chart{width:100%;height:auto;display:block}
svg.chart text{font:11px system-ui,-apple-system,"DejaVu Sans",sans-serif;fill:#6b7280}
svg.chart .grid{stroke:#eef0f4}
svg.chart .axis{stroke:#cfd4dc}
.legend{display:flex;gap:16px;flex-wrap:wrap;font-size:12px;color:var(--muted);margin:4px 0 0}
.legend i{display:inline-block;width:14px;height:3px;border-radius:2px;vertical-align:middle;margin-right:6px}
.legend i.dash{background:repeating-linear-gradient(90deg,var(--warn) 0 4px,transparent 4px 7px)!important}
.share{height:8px;border-radius:4px;background:#e2e8f0;position:relative;min-width:60px;margin-top:5px}
.share span{position:absolute;top:0;bottom:0;border-radius:4px}
.kpi .value.multi{font-size:15px;line-height:1.5}
.mbar{height:6px;border-radius:3px;background:var(--accent);opacity:.75;margin-top:3px}
details>summary{cursor:pointer;color:var(--accent);font-weight:600;margin:4px 0 10px}
.offer-head{display:flex;justify-content:space-between;align-items:baseline;gap:12px;flex-wrap:wrap}
.footer{color:var(--muted);font-size:12px;margin-top:30px}
"#;

/// Escapes text for HTML content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Escapes one JSON pointer token (RFC 6901).
fn tok(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// A decimal string with thousands separators: `-12345.60` → `-12,345.60`.
fn group(s: &str) -> String {
    let (sign, rest) = s.strip_prefix('-').map_or(("", s), |r| ("-", r));
    let (int, frac) = rest.split_once('.').map_or((rest, None), |(i, f)| (i, Some(f)));
    let mut g = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            g.push(',');
        }
        g.push(c);
    }
    match frac {
        Some(f) => format!("{sign}{g}.{f}"),
        None => format!("{sign}{g}"),
    }
}

/// A figure as shown: `<span data-json=…>12,345.60</span>`.
fn num(pointer: &str, value: &str) -> String {
    format!(r#"<span class="num" data-json="{}">{}</span>"#, esc(pointer), esc(&group(value)))
}

fn count(pointer: &str, value: u64) -> String {
    num(pointer, &value.to_string())
}

/// A rate shown as a percentage (cash) or as points per unit, carrying
/// the JSON value in `data-value`.
fn rate(pointer: &str, value: Option<&str>, kind: &str) -> String {
    match value {
        None => "<span class=\"muted\">–</span>".into(),
        Some(v) => {
            let f: f64 = v.parse().unwrap_or(0.0);
            let shown = if kind == "CASH" { format!("{:.2} %", f * 100.0) } else { format!("{f:.2} pts/unit") };
            format!(r#"<span data-json="{}" data-value="{}">{}</span>"#, esc(pointer), esc(v), shown)
        }
    }
}

fn f(s: &str) -> f64 {
    s.parse().unwrap_or(0.0)
}

/// A round step for about `n` grid lines up to `max`.
fn nice_step(max: f64, n: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / n;
    let mag = 10f64.powf(raw.log10().floor());
    let m = raw / mag;
    let nice = if m <= 1.0 {
        1.0
    } else if m <= 2.0 {
        2.0
    } else if m <= 2.5 {
        2.5
    } else if m <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * mag
}

/// An axis label: short numbers for ticks (`12k`, `1.5M`).
fn short(v: f64) -> String {
    let a = v.abs();
    let (x, suffix) = if a >= 1e9 {
        (v / 1e9, "B")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e4 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let s = if x.fract().abs() < 1e-9 { format!("{x:.0}") } else { format!("{x:.1}") };
    format!("{s}{suffix}")
}

/// One line series of a time chart.
struct Series<'a> {
    label: String,
    color: &'a str,
    values: Vec<f64>,
    /// JSON pointer of each point's value, and the value as written.
    points: Vec<(String, String)>,
    area: bool,
    dashed: bool,
}

/// A horizontal reference line (a budget).
struct Rule {
    label: String,
    value: f64,
    pointer: String,
    raw: String,
}

/// A line chart over the report's days.
fn time_chart(
    id: &str,
    days: &[String],
    series: &[Series<'_>],
    rule: Option<&Rule>,
    marker: Option<(usize, &str)>,
    w: f64,
) -> String {
    let h = if w > 900.0 { 300.0 } else { 260.0 };
    let (l, r, t, b) = (56.0, 16.0, 14.0, 28.0);
    let n = days.len().max(1);
    let mut max = series.iter().flat_map(|s| s.values.iter().copied()).fold(0.0, f64::max);
    if let Some(rule) = rule {
        max = max.max(rule.value);
    }
    let step = nice_step(max * 1.05, 4.0);
    let top = (max * 1.05 / step).ceil().max(1.0) * step;
    let x = |i: usize| if n <= 1 { l + (w - l - r) / 2.0 } else { l + (w - l - r) * i as f64 / (n - 1) as f64 };
    let y = |v: f64| t + (h - t - b) * (1.0 - v / top);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" data-chart="{id}" viewBox="0 0 {w} {h}" role="img" xmlns="http://www.w3.org/2000/svg">"#
    );
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        let yy = y(v);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{l}" x2="{}" y1="{yy:.1}" y2="{yy:.1}"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            w - r,
            l - 6.0,
            yy + 4.0,
            short(v)
        );
        v += step;
    }
    let label_every = (n as f64 / (w / 95.0)).ceil().max(1.0) as usize;
    for (i, d) in days.iter().enumerate() {
        if i % label_every == 0 || i + 1 == n {
            if i + 1 == n && i % label_every != 0 && i % label_every < label_every / 2 {
                continue;
            }
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x(i),
                h - 8.0,
                esc(d.get(5..).unwrap_or(d))
            );
        }
    }
    let _ = write!(s, r#"<line class="axis" x1="{l}" x2="{}" y1="{:.1}" y2="{:.1}"/>"#, w - r, y(0.0), y(0.0));
    if let Some((i, label)) = marker {
        let xx = x(i);
        let _ = write!(
            s,
            r##"<line x1="{xx:.1}" x2="{xx:.1}" y1="{t}" y2="{:.1}" stroke="#dc2626" stroke-width="1" stroke-dasharray="2 3"/><text x="{:.1}" y="{}" fill="#dc2626" style="fill:#dc2626" text-anchor="{}">{}</text>"##,
            y(0.0),
            if xx > w - 160.0 { xx - 4.0 } else { xx + 4.0 },
            t + 24.0,
            if xx > w - 160.0 { "end" } else { "start" },
            esc(label)
        );
    }
    for se in series {
        if se.values.is_empty() {
            continue;
        }
        let pts: Vec<String> = se.values.iter().enumerate().map(|(i, v)| format!("{:.1},{:.1}", x(i), y(*v))).collect();
        if se.area {
            let _ = write!(
                s,
                r#"<polygon points="{:.1},{:.1} {} {:.1},{:.1}" fill="{}" fill-opacity="0.10"/>"#,
                x(0),
                y(0.0),
                pts.join(" "),
                x(se.values.len() - 1),
                y(0.0),
                se.color
            );
        }
        let _ = write!(
            s,
            r#"<polyline class="series" data-series="{}" points="{}" fill="none" stroke="{}" stroke-width="2.2" stroke-linejoin="round"{}/>"#,
            esc(&se.label),
            pts.join(" "),
            se.color,
            if se.dashed { r#" stroke-dasharray="5 4""# } else { "" }
        );
        // Invisible marks carry each point's value (and a tooltip).
        for (i, (pointer, raw)) in se.points.iter().enumerate() {
            let _ = write!(
                s,
                r#"<circle class="pt" cx="{:.1}" cy="{:.1}" r="3" fill="{}" fill-opacity="0" data-json="{}" data-value="{}"><title>{} {}: {}</title></circle>"#,
                x(i),
                y(se.values[i]),
                se.color,
                esc(pointer),
                esc(raw),
                esc(&days[i]),
                esc(&se.label),
                esc(&group(raw))
            );
        }
    }
    if let Some(rule) = rule {
        let yy = y(rule.value);
        let _ = write!(
            s,
            r##"<line class="budget" x1="{l}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#dc2626" stroke-width="1.6" stroke-dasharray="6 4" data-json="{}" data-value="{}"/><text x="{}" y="{:.1}" text-anchor="end" style="fill:#dc2626">{}</text>"##,
            w - r,
            esc(&rule.pointer),
            esc(&rule.raw),
            w - r - 4.0,
            yy - 5.0,
            esc(&rule.label)
        );
    }
    s.push_str("</svg>");
    s
}

/// A vertical bar chart: one bar per bucket, height by cost.
fn bars(id: &str, base: &str, buckets: &[BucketReport], unit: &str, color: &str) -> String {
    let (w, h) = (if buckets.len() > 12 { 720.0 } else { 400.0 }, 220.0);
    let (l, r, t, b) = (44.0, 8.0, 10.0, 24.0);
    let max = buckets.iter().map(|x| f(&x.cost)).fold(0.0, f64::max);
    let step = nice_step(max * 1.05, 3.0);
    let top = (max * 1.05 / step).ceil().max(1.0) * step;
    let slot = (w - l - r) / buckets.len().max(1) as f64;
    let y = |v: f64| t + (h - t - b) * (1.0 - v / top);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" data-chart="{id}" viewBox="0 0 {w} {h}" role="img" xmlns="http://www.w3.org/2000/svg">"#
    );
    let mut v = 0.0;
    while v <= top + step / 2.0 {
        let yy = y(v);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{l}" x2="{}" y1="{yy:.1}" y2="{yy:.1}"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            w - r,
            l - 5.0,
            yy + 4.0,
            short(v)
        );
        v += step;
    }
    let every = if buckets.len() > 12 { 2 } else { 1 };
    for (i, bk) in buckets.iter().enumerate() {
        let value = f(&bk.cost);
        let x0 = l + slot * i as f64 + slot * 0.14;
        let bw = slot * 0.72;
        let y0 = y(value);
        let _ = write!(
            s,
            r#"<rect class="bar" x="{x0:.1}" y="{y0:.1}" width="{bw:.1}" height="{:.1}" rx="2" fill="{color}" data-json="{}" data-value="{}"><title>{}: {} {} · {} rewarded transactions · spend {}</title></rect>"#,
            (y(0.0) - y0).max(0.0),
            esc(&format!("{base}/{i}/cost")),
            esc(&bk.cost),
            esc(&bk.key),
            esc(&group(&bk.cost)),
            esc(unit),
            bk.rewarded_transactions,
            esc(&group(&bk.qualifying_spend))
        );
        if i % every == 0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                x0 + bw / 2.0,
                h - 8.0,
                esc(&bk.key)
            );
        }
    }
    let _ = write!(s, r#"<line class="axis" x1="{l}" x2="{}" y1="{:.1}" y2="{:.1}"/>"#, w - r, y(0.0), y(0.0));
    s.push_str("</svg>");
    s
}

/// Horizontal bars: one row per bucket (networks).
fn hbars(id: &str, base: &str, buckets: &[BucketReport], unit: &str) -> String {
    let (w, row) = (400.0, 30.0);
    let h = row * buckets.len() as f64 + 8.0;
    let (l, r) = (92.0, 90.0);
    let max = buckets.iter().map(|x| f(&x.cost)).fold(0.0, f64::max).max(1e-9);
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" data-chart="{id}" viewBox="0 0 {w} {h}" role="img" xmlns="http://www.w3.org/2000/svg">"#
    );
    for (i, bk) in buckets.iter().enumerate() {
        let value = f(&bk.cost);
        let yy = 4.0 + row * i as f64;
        let bw = (w - l - r) * value / max;
        let _ = write!(
            s,
            r##"<text x="{}" y="{:.1}" text-anchor="end">{}</text><rect x="{l}" y="{:.1}" width="{:.1}" height="{:.1}" rx="3" fill="#eef0f4"/><rect class="bar" x="{l}" y="{:.1}" width="{bw:.1}" height="{:.1}" rx="3" fill="{}" data-json="{}" data-value="{}"><title>{}: {} {} · {} rewarded transactions</title></rect><text x="{:.1}" y="{:.1}">{}</text>"##,
            l - 8.0,
            yy + row * 0.55,
            esc(&bk.key),
            yy + 6.0,
            w - l - r,
            row - 12.0,
            yy + 6.0,
            row - 12.0,
            PALETTE[i % PALETTE.len()],
            esc(&format!("{base}/{i}/cost")),
            esc(&bk.cost),
            esc(&bk.key),
            esc(&group(&bk.cost)),
            esc(unit),
            bk.rewarded_transactions,
            l + bw + 6.0,
            yy + row * 0.55,
            esc(&group(&bk.cost))
        );
    }
    s.push_str("</svg>");
    s
}

fn kpi(label: &str, value: &str, unit: &str, sub: &str) -> String {
    // Sums in several units are listed smaller, one unit a line.
    let class = if value.contains("<br>") { "value multi" } else { "value" };
    format!(
        r#"<div class="kpi"><div class="label">{}</div><div class="{class}">{value}{}</div>{}</div>"#,
        esc(label),
        if unit.is_empty() { String::new() } else { format!(r#"<span class="unit">{}</span>"#, esc(unit)) },
        if sub.is_empty() { String::new() } else { format!(r#"<div class="sub">{sub}</div>"#) }
    )
}

/// Sums by unit as `12,345.60 USD · 800 POINTS`.
fn unit_sums(base: &str, m: &std::collections::BTreeMap<String, String>) -> String {
    if m.is_empty() {
        return "<span class=\"muted\">0</span>".into();
    }
    m.iter()
        .map(|(u, v)| format!(r#"{} <span class="unit">{}</span>"#, num(&format!("{base}/{}", tok(u)), v), esc(u)))
        .collect::<Vec<_>>()
        .join("<br>")
}

/// The whole page. Detailed sections (charts, merchants) are drawn for the
/// `detailed_offers` offers of each scenario with the most rewards; every
/// offer is in the tables and in the JSON.
pub fn render_html(report: &Report, detailed_offers: usize) -> String {
    let mut s = String::with_capacity(256 * 1024);
    let title = match report.scenarios.len() {
        1 => format!("Backtest: {}", report.scenarios[0].name),
        n => format!("Backtest: {n} offer files side by side"),
    };
    let _ = write!(
        s,
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>{}</title><link rel="icon" href="data:,"><style>{CSS}</style></head><body>"#,
        esc(&title)
    );
    let fe = &report.feed;
    let window = match (&report.window.from, &report.window.until) {
        (None, None) => "whole feed".to_string(),
        (f, u) => format!("{} → {}", f.as_deref().unwrap_or("start"), u.as_deref().unwrap_or("end")),
    };
    let _ = write!(
        s,
        r#"<header class="top"><h1>{}</h1><p>What these offers would have cost on <b>{}</b> · window: {} · events {} to {}</p></header><main>"#,
        esc(&title),
        esc(&report.events),
        esc(&window),
        esc(fe.first_event_at.as_deref().unwrap_or("–")),
        esc(fe.last_event_at.as_deref().unwrap_or("–"))
    );

    // The feed.
    s.push_str(r#"<section id="feed"><h2>The feed</h2><div class="kpis">"#);
    s.push_str(&kpi("Records read", &count("/feed/records", fe.records), "", ""));
    s.push_str(&kpi(
        "Events processed",
        &count("/feed/processed", fe.processed),
        "",
        &format!(
            "{} duplicates · {} outside the window",
            count("/feed/duplicate", fe.duplicate),
            count("/feed/outside_window", fe.outside_window)
        ),
    ));
    s.push_str(&kpi("Rejected", &count("/feed/rejected", fe.rejected), "", "dead letters (R1)"));
    s.push_str(&kpi("Cards", &count("/feed/cards", fe.cards), "", ""));
    s.push_str(&kpi(
        "Purchases",
        &count("/feed/purchases", fe.purchases),
        "",
        &unit_sums("/feed/purchase_spend", &fe.purchase_spend),
    ));
    s.push_str("</div></section>");

    if report.scenarios.len() > 1 {
        comparison(&mut s, report);
    }
    for (si, sc) in report.scenarios.iter().enumerate() {
        scenario(&mut s, report, si, sc, detailed_offers);
    }
    let _ = write!(
        s,
        r#"<p class="footer">{} · every figure is explained in docs/backtest.md · days are UTC days; hours and weekdays are the purchase's local time</p></main></body></html>"#,
        esc(&report.format)
    );
    s.push('\n');
    s
}

fn comparison(s: &mut String, report: &Report) {
    s.push_str(r#"<section id="comparison"><h2>Side by side</h2><div class="card"><table><thead><tr><th></th>"#);
    for (si, sc) in report.scenarios.iter().enumerate() {
        let _ = write!(
            s,
            r#"<th class="n"><span style="color:{}">■</span> {}<div class="terms">{}</div></th>"#,
            PALETTE[si % PALETTE.len()],
            esc(&sc.name),
            esc(&sc.source)
        );
    }
    s.push_str("</tr></thead><tbody>");
    type Cell = fn(usize, &ScenarioReport) -> String;
    let rows: [(&str, Cell); 11] = [
        ("Offers", |i, sc| count(&format!("/scenarios/{i}/offer_count"), sc.offer_count)),
        ("Cost (pending + confirmed)", |i, sc| unit_sums(&format!("/scenarios/{i}/totals/cost"), &sc.totals.cost)),
        ("Confirmed", |i, sc| unit_sums(&format!("/scenarios/{i}/totals/confirmed"), &sc.totals.confirmed)),
        ("Clawed back by refunds", |i, sc| {
            unit_sums(&format!("/scenarios/{i}/totals/clawed_back"), &sc.totals.clawed_back)
        }),
        ("Rewards issued", |i, sc| count(&format!("/scenarios/{i}/totals/rewards_issued"), sc.totals.rewards_issued)),
        ("Rewarded transactions", |i, sc| {
            count(&format!("/scenarios/{i}/totals/rewarded_transactions"), sc.totals.rewarded_transactions)
        }),
        ("Distinct cards", |i, sc| count(&format!("/scenarios/{i}/totals/distinct_cards"), sc.totals.distinct_cards)),
        ("Qualifying spend", |i, sc| {
            unit_sums(&format!("/scenarios/{i}/totals/qualifying_spend"), &sc.totals.qualifying_spend)
        }),
        ("Offers with rewards", |i, sc| {
            count(&format!("/scenarios/{i}/totals/offers_with_rewards"), sc.totals.offers_with_rewards)
        }),
        ("Budgets exhausted", |i, sc| {
            count(&format!("/scenarios/{i}/totals/budgets_exhausted"), sc.totals.budgets_exhausted)
        }),
        ("Contested purchases (R5)", |i, sc| {
            count(&format!("/scenarios/{i}/competition/contested_purchases"), sc.competition.contested_purchases)
        }),
    ];
    for (label, cell) in rows {
        let _ = write!(s, "<tr><td>{}</td>", esc(label));
        for (si, sc) in report.scenarios.iter().enumerate() {
            let _ = write!(s, r#"<td class="n">{}</td>"#, cell(si, sc));
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table></div>");

    // Cumulative cost per unit, one line per scenario: the sum over the
    // scenario's offers of their cumulative cost.
    let mut units: Vec<(String, usize)> = Vec::new();
    for sc in &report.scenarios {
        for o in &sc.offers {
            match units.iter_mut().find(|(u, _)| *u == o.unit) {
                Some((_, n)) => *n += o.rewards_issued as usize,
                None => units.push((o.unit.clone(), o.rewards_issued as usize)),
            }
        }
    }
    units.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    units.retain(|(_, n)| *n > 0);
    units.truncate(3);
    if !units.is_empty() {
        s.push_str(r#"<div class="grid2" style="grid-template-columns:repeat(auto-fit,minmax(420px,1fr))">"#);
        for (unit, _) in &units {
            let series: Vec<Series<'_>> = report
                .scenarios
                .iter()
                .enumerate()
                .map(|(si, sc)| {
                    let values = (0..report.days.len())
                        .map(|d| {
                            sc.offers.iter().filter(|o| o.unit == *unit).map(|o| f(&o.by_day[d].cumulative_cost)).sum()
                        })
                        .collect();
                    Series {
                        label: sc.name.clone(),
                        color: PALETTE[si % PALETTE.len()],
                        values,
                        points: Vec::new(),
                        area: false,
                        dashed: false,
                    }
                })
                .collect();
            let _ = write!(s, r#"<div class="card"><h3>Cumulative cost, {}</h3><div class="legend">"#, esc(unit));
            for se in &series {
                let _ = write!(s, r#"<span><i style="background:{}"></i>{}</span>"#, se.color, esc(&se.label));
            }
            s.push_str("</div>");
            s.push_str(&time_chart(&format!("compare-{unit}"), &report.days, &series, None, None, 560.0));
            s.push_str("</div>");
        }
        s.push_str("</div>");
    }
    s.push_str("</section>");
}

fn scenario(s: &mut String, report: &Report, si: usize, sc: &ScenarioReport, detailed: usize) {
    let p = format!("/scenarios/{si}");
    let _ = write!(
        s,
        r#"<section class="scenario" id="scenario-{si}" data-scenario="{si}"><h2><span style="color:{}">■</span> {} <span class="muted" style="font-weight:400;font-size:14px">{} · {} offers</span></h2><div class="kpis">"#,
        PALETTE[si % PALETTE.len()],
        esc(&sc.name),
        esc(&sc.source),
        sc.offer_count
    );
    let t = &sc.totals;
    s.push_str(&kpi("Cost", &unit_sums(&format!("{p}/totals/cost"), &t.cost), "", "pending + confirmed at the end"));
    s.push_str(&kpi("Confirmed", &unit_sums(&format!("{p}/totals/confirmed"), &t.confirmed), "", ""));
    s.push_str(&kpi(
        "Rewarded transactions",
        &count(&format!("{p}/totals/rewarded_transactions"), t.rewarded_transactions),
        "",
        &format!("{} rewards issued", count(&format!("{p}/totals/rewards_issued"), t.rewards_issued)),
    ));
    s.push_str(&kpi(
        "Distinct cards",
        &count(&format!("{p}/totals/distinct_cards"), t.distinct_cards),
        "",
        &format!("{} still holding a reward", count(&format!("{p}/totals/distinct_cards_live"), t.distinct_cards_live)),
    ));
    s.push_str(&kpi(
        "Clawed back",
        &unit_sums(&format!("{p}/totals/clawed_back"), &t.clawed_back),
        "",
        "by refunds (R11)",
    ));
    s.push_str(&kpi(
        "Budgets exhausted",
        &count(&format!("{p}/totals/budgets_exhausted"), t.budgets_exhausted),
        "",
        &format!("of {} offers", sc.offer_count),
    ));
    s.push_str("</div>");

    // Every offer.
    let _ = write!(
        s,
        r#"<div class="card"><h3>Offers of {}</h3><details{}><summary>All {} offers</summary><table class="offers"><thead><tr><th>Offer</th><th class="n">Rewarded tx</th><th class="n">Cards</th><th class="n">Cost</th><th class="n">Pending</th><th class="n">Confirmed</th><th class="n">Clawed back</th><th class="n">Eff. rate</th><th class="n">Budget</th><th>Ran out</th><th class="n">R5 won / contested</th></tr></thead><tbody>"#,
        esc(&sc.name),
        if sc.offers.len() <= 40 { " open" } else { "" },
        sc.offers.len()
    );
    for (oi, o) in sc.offers.iter().enumerate() {
        let op = format!("{p}/offers/{oi}");
        let _ = write!(
            s,
            r#"<tr data-offer="{}"><td><b>{}</b> <span class="pill{}">{}</span><div class="terms">{}</div></td><td class="n">{}</td><td class="n">{}</td><td class="n">{} <span class="muted">{}</span></td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td>{}</td><td class="n">{} / {}</td></tr>"#,
            esc(&o.id),
            esc(&o.id),
            if o.kind == "POINTS" { " points" } else { "" },
            esc(&o.unit),
            esc(&o.terms),
            count(&format!("{op}/rewarded_transactions"), o.rewarded_transactions),
            count(&format!("{op}/distinct_cards"), o.distinct_cards),
            num(&format!("{op}/cost"), &o.cost),
            esc(&o.unit),
            num(&format!("{op}/pending"), &o.pending),
            num(&format!("{op}/confirmed"), &o.confirmed),
            num(&format!("{op}/clawed_back"), &o.clawed_back),
            rate(&format!("{op}/effective_rate"), o.effective_rate.as_deref(), &o.kind),
            o.budget
                .as_deref()
                .map_or_else(|| "<span class=\"muted\">–</span>".into(), |b| num(&format!("{op}/budget"), b)),
            o.budget_ran_out_day.as_deref().map_or_else(String::new, |d| format!(
                r#"<span class="pill out" data-json="{}">{}</span>"#,
                esc(&format!("{op}/budget_ran_out_day")),
                esc(d)
            )),
            count(&format!("{op}/won"), o.won),
            count(&format!("{op}/contested"), o.contested),
        );
    }
    s.push_str("</tbody></table></details></div>");

    // Competition.
    let c = &sc.competition;
    let _ = write!(
        s,
        r#"<div class="card"><h3>Competing offers (R5)</h3><p class="muted">{} purchases had two or more eligible cash offers; the largest value won, ties to the smallest id. Predicted before each purchase and checked against the engine: {} of {} differed.</p>"#,
        count(&format!("{p}/competition/contested_purchases"), c.contested_purchases),
        count(&format!("{p}/competition/prediction_mismatches"), c.prediction_mismatches),
        count(&format!("{p}/competition/purchases_checked"), c.purchases_checked)
    );
    if c.pairs.is_empty() {
        s.push_str(r#"<p class="muted">No two cash offers were eligible for the same purchase.</p>"#);
    } else {
        s.push_str(r#"<table class="pairs"><thead><tr><th>Offer</th><th class="n">Won</th><th style="width:30%">Share</th><th class="n">Won</th><th>Offer</th><th class="n">Purchases</th></tr></thead><tbody>"#);
        for (pi, pr) in c.pairs.iter().enumerate() {
            let pp = format!("{p}/competition/pairs/{pi}");
            let share = if pr.purchases == 0 { 0.0 } else { pr.wins[0] as f64 / pr.purchases as f64 * 100.0 };
            let share_b = if pr.purchases == 0 { 0.0 } else { pr.wins[1] as f64 / pr.purchases as f64 * 100.0 };
            let _ = write!(
                s,
                r#"<tr><td>{}</td><td class="n">{}</td><td><div class="share"><span style="left:0;width:{share:.1}%;background:var(--accent)"></span><span style="right:0;width:{share_b:.1}%;background:var(--accent2)"></span></div></td><td class="n">{}</td><td>{}</td><td class="n">{}</td></tr>"#,
                esc(&pr.offers[0]),
                count(&format!("{pp}/wins/0"), pr.wins[0]),
                count(&format!("{pp}/wins/1"), pr.wins[1]),
                esc(&pr.offers[1]),
                count(&format!("{pp}/purchases"), pr.purchases)
            );
        }
        s.push_str("</tbody></table>");
    }
    s.push_str("</div>");

    // Details of the busiest offers.
    let mut order: Vec<usize> = (0..sc.offers.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&sc.offers[a], &sc.offers[b]);
        y.rewards_issued.cmp(&x.rewards_issued).then(a.cmp(&b))
    });
    order.retain(|&i| sc.offers[i].rewards_issued > 0);
    // The busiest offers, and a few whose budget ran out besides: the
    // moment a budget runs out is what a funder looks for first.
    let mut shown: Vec<usize> = order.iter().copied().take(detailed).collect();
    let extra: Vec<usize> = order
        .iter()
        .copied()
        .skip(detailed)
        .filter(|&i| sc.offers[i].budget_ran_out_day.is_some())
        .take(detailed.div_ceil(3))
        .collect();
    shown.extend(extra);
    let order = shown;
    if order.is_empty() {
        return s.push_str("</section>");
    }
    let _ = write!(
        s,
        r#"<h2>Offer by offer <span class="muted" style="font-weight:400;font-size:14px">{} with the most rewards</span></h2>"#,
        order.len()
    );
    for oi in order {
        offer_detail(s, report, si, oi, &sc.offers[oi]);
    }
    s.push_str("</section>");
}

fn offer_detail(s: &mut String, report: &Report, si: usize, oi: usize, o: &OfferReport) {
    let op = format!("/scenarios/{si}/offers/{oi}");
    let _ = write!(
        s,
        r#"<div class="card offer" data-offer="{}"><div class="offer-head"><div><h3>{} <span class="pill{}">{}</span>{}</h3><div class="terms">{}</div></div></div><div class="kpis" style="margin-top:12px">"#,
        esc(&o.id),
        esc(&o.id),
        if o.kind == "POINTS" { " points" } else { "" },
        esc(&o.unit),
        o.budget_ran_out_day
            .as_deref()
            .map_or_else(String::new, |d| format!(r#" <span class="pill out">budget ran out {}</span>"#, esc(d))),
        esc(&o.terms)
    );
    s.push_str(&kpi(
        "Cost",
        &num(&format!("{op}/cost"), &o.cost),
        &o.unit,
        &format!(
            "{} pending · {} confirmed",
            num(&format!("{op}/pending"), &o.pending),
            num(&format!("{op}/confirmed"), &o.confirmed)
        ),
    ));
    s.push_str(&kpi(
        "Rewarded transactions",
        &count(&format!("{op}/rewarded_transactions"), o.rewarded_transactions),
        "",
        &format!(
            "{} issued · {} ended",
            count(&format!("{op}/rewards_issued"), o.rewards_issued),
            count(&format!("{op}/rewards_ended"), o.rewards_ended)
        ),
    ));
    s.push_str(&kpi(
        "Distinct cards",
        &count(&format!("{op}/distinct_cards"), o.distinct_cards),
        "",
        &format!("at {} merchants", count(&format!("{op}/merchants"), o.merchants)),
    ));
    s.push_str(&kpi(
        "Effective rate",
        &rate(&format!("{op}/effective_rate"), o.effective_rate.as_deref(), &o.kind),
        "",
        &format!(
            "on {} {} qualifying spend",
            num(&format!("{op}/qualifying_spend"), &o.qualifying_spend),
            esc(&o.currency)
        ),
    ));
    s.push_str(&kpi(
        "Clawed back",
        &num(&format!("{op}/clawed_back"), &o.clawed_back),
        &o.unit,
        &format!(
            "{} reversed · {} refund records",
            num(&format!("{op}/reversed"), &o.reversed),
            count(&format!("{op}/refunds"), o.refunds)
        ),
    ));
    s.push_str("</div>");

    // Cost over time, with the budget.
    let series = [
        Series {
            label: "cost (pending + confirmed)".into(),
            color: PALETTE[0],
            values: o.by_day.iter().map(|d| f(&d.cumulative_cost)).collect(),
            points: o
                .by_day
                .iter()
                .enumerate()
                .map(|(d, x)| (format!("{op}/by_day/{d}/cumulative_cost"), x.cumulative_cost.clone()))
                .collect(),
            area: true,
            dashed: false,
        },
        Series {
            label: "confirmed".into(),
            color: PALETTE[1],
            values: o.by_day.iter().map(|d| f(&d.cumulative_confirmed)).collect(),
            points: o
                .by_day
                .iter()
                .enumerate()
                .map(|(d, x)| (format!("{op}/by_day/{d}/cumulative_confirmed"), x.cumulative_confirmed.clone()))
                .collect(),
            area: false,
            dashed: false,
        },
    ];
    let rule = o.budget.as_ref().map(|b| Rule {
        label: format!("budget {} {}", group(b), o.unit),
        value: f(b),
        pointer: format!("{op}/budget"),
        raw: b.clone(),
    });
    let marker = o
        .budget_ran_out_day
        .as_ref()
        .and_then(|d| report.days.iter().position(|x| x == d).map(|i| (i, format!("ran out {}", &d[5..]))));
    let _ = write!(
        s,
        r#"<h4>Cost over time ({})</h4><div class="legend"><span><i style="background:{}"></i>cost (pending + confirmed)</span><span><i style="background:{}"></i>confirmed</span>{}</div>"#,
        esc(&o.unit),
        PALETTE[0],
        PALETTE[1],
        if rule.is_some() { r#"<span><i class="dash"></i>budget</span>"# } else { "" }
    );
    s.push_str(&time_chart(
        "cost-over-time",
        &report.days,
        &series,
        rule.as_ref(),
        marker.as_ref().map(|(i, l)| (*i, l.as_str())),
        1120.0,
    ));
    let _ = write!(
        s,
        r#"<div class="grid2" style="grid-template-columns:1.8fr 1fr"><div><h4>By local hour of the purchase ({0})</h4>{1}</div><div><h4>By local day of week ({0})</h4>{2}</div></div>"#,
        esc(&o.unit),
        bars("hours", &format!("{op}/by_hour"), &o.by_hour, &o.unit, PALETTE[0]),
        bars("weekdays", &format!("{op}/by_weekday"), &o.by_weekday, &o.unit, PALETTE[1])
    );
    let _ = write!(
        s,
        r#"<div class="grid2" style="grid-template-columns:1fr 1.8fr"><div><h4>By network ({})</h4>"#,
        esc(&o.unit)
    );
    s.push_str(&hbars("networks", &format!("{op}/by_network"), &o.by_network, &o.unit));
    s.push_str("</div><div><h4>Top merchants</h4>");
    if o.top_merchants.is_empty() {
        s.push_str(r#"<p class="muted">none</p>"#);
    } else {
        s.push_str(r#"<table class="merchants"><thead><tr><th>Merchant</th><th class="n">Rewarded tx</th><th class="n">Qualifying spend</th><th class="n">Cost</th><th style="width:22%"></th></tr></thead><tbody>"#);
        let top = o.top_merchants.iter().map(|m| f(&m.cost)).fold(0.0, f64::max).max(1e-9);
        for (mi, m) in o.top_merchants.iter().enumerate() {
            let mp = format!("{op}/top_merchants/{mi}");
            let _ = write!(
                s,
                r#"<tr><td>{} <span class="terms">{}</span></td><td class="n">{}</td><td class="n">{}</td><td class="n">{}</td><td><div class="mbar" style="width:{:.1}%"></div></td></tr>"#,
                esc(m.name.as_deref().unwrap_or(&m.mid)),
                esc(&m.mid),
                count(&format!("{mp}/rewarded_transactions"), m.rewarded_transactions),
                num(&format!("{mp}/qualifying_spend"), &m.qualifying_spend),
                num(&format!("{mp}/cost"), &m.cost),
                f(&m.cost) / top * 100.0
            );
        }
        s.push_str("</tbody></table>");
    }
    s.push_str("</div></div></div>");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        assert_eq!(group(input), expected, "{input}");
    }

    #[test]
    fn thousands_separators() {
        for (i, e) in [
            ("0", "0"),
            ("12", "12"),
            ("123", "123"),
            ("1234", "1,234"),
            ("1234567.89", "1,234,567.89"),
            ("-1234.5", "-1,234.5"),
            ("-123", "-123"),
            ("100000", "100,000"),
        ] {
            check(i, e);
        }
    }

    #[test]
    fn escaping_and_steps() {
        assert_eq!(esc(r#"<a href="x">&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
        assert_eq!(tok("a/b~c"), "a~1b~0c");
        assert_eq!(nice_step(100.0, 4.0), 25.0);
        assert_eq!(nice_step(0.0, 4.0), 1.0);
        assert_eq!(nice_step(9000.0, 4.0), 2500.0);
        assert_eq!(short(12000.0), "12k");
        assert_eq!(short(1_500_000.0), "1.5M");
    }
}
