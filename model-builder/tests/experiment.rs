//! Issue #19's loop end to end through the binary: `simulate` runs an
//! experiment on the synthetic shop's families, `report` reads its logs
//! back, and the report must find the lift the simulator knows, call an
//! A/A test significant no more often than its confidence allows, and
//! name bad input.

use std::path::{Path, PathBuf};

mod common;
use common::*;

/// A synthetic shop of `families` families (10 days of log ending the day
/// before 2026-11-01) and its model as of 2026-11-01, learned ranker
/// included; returns (shop, model folder).
fn shop_and_model(name: &str, families: u32) -> (PathBuf, PathBuf) {
    let dir = scratch_dir(name);
    let shop = dir.join("shop");
    let model = dir.join("model");
    let n = families.to_string();
    ok(&[
        "synth",
        "--kind",
        "mother-baby",
        "--out",
        shop.to_str().unwrap(),
        "--users",
        &n,
        "--days",
        "10",
        "--end",
        "2026-11-01",
    ]);
    ok(&[
        "build",
        "--data",
        shop.to_str().unwrap(),
        "--as-of",
        "2026-11-01",
        "--out",
        model.to_str().unwrap(),
        "--k",
        "20",
    ]);
    (shop, model)
}

fn simulate(shop: &Path, model: &Path, out: &Path, variants: &str, days: &str, seed: u64) {
    ok(&[
        "simulate",
        "--data",
        shop.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--days",
        days,
        "--variants",
        variants,
        "--seed",
        &seed.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
}

fn report_json(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let args = [
        &["report", "--data", dir.to_str().unwrap(), "--json"][..],
        extra,
    ]
    .concat();
    serde_json::from_str(&ok(&args)).expect("report --json prints JSON")
}

fn json_file(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_report_finds_the_lift_the_simulator_made() {
    let (shop, model) = shop_and_model("experiment-ab", 3_000);
    let sim = shop.parent().unwrap().join("ab");
    simulate(&shop, &model, &sim, "control,nestrank", "7", 3);

    // The logs: the builder's layout, events tagged with variant and rank.
    let events = std::fs::read_to_string(sim.join("events.csv")).unwrap();
    assert!(events.starts_with("user_id,item_id,event,ts,variant,shown_rank\n"));
    let exposures = std::fs::read_to_string(sim.join("exposures.csv")).unwrap();
    assert!(exposures.starts_with("user_id,variant,ts\n"));

    let truth = json_file(&sim.join("truth.json"))["conversion_rate"].clone();
    let true_lift = truth["nestrank"].as_f64().unwrap() / truth["control"].as_f64().unwrap() - 1.0;
    let r = report_json(&sim, &[]);
    assert_eq!(r["baseline"], "control");
    assert_eq!(r["visitors_from"], "exposures");
    assert_eq!(r["crossed_visitors"], 0, "assignment is sticky");
    let v = &r["variants"];
    let visitors =
        v["control"]["visitors"].as_u64().unwrap() + v["nestrank"]["visitors"].as_u64().unwrap();
    let distinct: std::collections::HashSet<&str> = exposures
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    assert_eq!(visitors, distinct.len() as u64);
    // Half and half, within 4 standard deviations.
    let c = v["control"]["visitors"].as_f64().unwrap();
    assert!((c / visitors as f64 - 0.5).abs() < 4.0 * (0.25 / visitors as f64).sqrt());
    let lift = &r["lift"]["nestrank"];
    let (lo, hi) = (lift["lo"].as_f64().unwrap(), lift["hi"].as_f64().unwrap());
    assert!(
        lo <= true_lift && true_lift <= hi,
        "the true lift {true_lift:.3} is outside [{lo:.3}, {hi:.3}]"
    );
    assert!(
        true_lift > 0.05,
        "nestrank should sell more: {true_lift:.3}"
    );
    assert_eq!(lift["significant"], true, "{lift}");
    assert!(lift["verdict"]
        .as_str()
        .unwrap()
        .starts_with("nestrank beats control by"));
    // The personalized page gets its taps higher up.
    let top10 = |name: &str| -> f64 {
        let clicks: Vec<u64> = v[name]["clicks_by_rank"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap())
            .collect();
        clicks[..10].iter().sum::<u64>() as f64 / v[name]["pages"].as_f64().unwrap()
    };
    assert!(top10("nestrank") > 2.0 * top10("control"));
    assert!(v["nestrank"]["revenue_per_visitor"].as_f64().unwrap() > 0.0);

    // The same logs as Parquet (events in day partitions) give the same report.
    let parquet = shop.parent().unwrap().join("ab-parquet");
    ok(&[
        "simulate",
        "--data",
        shop.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--seed",
        "3",
        "--format",
        "parquet",
        "--out",
        parquet.to_str().unwrap(),
    ]);
    assert!(parquet.join("exposures.parquet").exists() && parquet.join("events").is_dir());
    assert!(!parquet.join("events.csv").exists());
    assert_eq!(
        report_json(&parquet, &[]),
        r,
        "Parquet and CSV logs, one report"
    );

    // The nightly build reads the tagged logs as it reads any.
    let rebuilt = shop.parent().unwrap().join("rebuilt");
    ok(&[
        "build",
        "--data",
        sim.to_str().unwrap(),
        "--as-of",
        "2026-11-08",
        "--out",
        rebuilt.to_str().unwrap(),
        "--train-days",
        "0",
    ]);

    // The HTML: self-contained, with its charts and the verdict.
    let html_path = shop.parent().unwrap().join("report.html");
    let eval = shop.parent().unwrap().join("eval.json");
    std::fs::write(
        &eval,
        ok(&[
            "eval",
            "--data",
            shop.to_str().unwrap(),
            "--json",
            "--days",
            "1",
        ]),
    )
    .unwrap();
    ok(&[
        "report",
        "--data",
        sim.to_str().unwrap(),
        "--out",
        html_path.to_str().unwrap(),
        "--model",
        model.to_str().unwrap(),
        "--replay",
        eval.to_str().unwrap(),
    ]);
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(html.contains("nestrank beats control by"));
    for part in [
        "Conversion rate per visitor",
        "Lift against the baseline",
        "Taps by the rank",
        "Offline replay",
        "Learned feature weights",
        "Bytes by section",
    ] {
        assert!(html.contains(part), "the report lacks {part:?}");
    }
    assert!(html.matches("<svg").count() >= 6);
    let outside: Vec<&str> = html
        .match_indices("http")
        .map(|(i, _)| &html[i..(i + 30).min(html.len())])
        .filter(|s| !s.starts_with("http://www.w3.org/2000/svg"))
        .collect();
    assert!(outside.is_empty(), "the report fetches {outside:?}");
}

/// With both arms serving the same thing, the 95% interval leaves out 0
/// in at most 5% of seeded runs.
#[test]
fn an_aa_test_is_rarely_called_significant() {
    let (shop, model) = shop_and_model("experiment-aa", 800);
    let dir = shop.parent().unwrap().to_path_buf();
    let runs = 40;
    let mut significant = Vec::new();
    for seed in 1..=runs {
        let sim = dir.join(format!("aa-{seed}"));
        simulate(&shop, &model, &sim, "nestrank,nestrank", "3", seed);
        let r = report_json(&sim, &["--bootstrap", "1000"]);
        let order: Vec<&str> = r["order"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(order, ["nestrank", "nestrank-2"]);
        if r["lift"]["nestrank-2"]["significant"] == true {
            significant.push(seed);
        }
        std::fs::remove_dir_all(&sim).unwrap();
    }
    assert!(
        significant.len() * 20 <= runs as usize,
        "A/A called significant in {} of {runs} runs (seeds {significant:?})",
        significant.len()
    );
}

#[test]
fn bad_experiments_and_logs_are_named() {
    let dir = scratch_dir("experiment-bad");
    // No shop.json: not a synthetic shop.
    let err = fails(&[
        "simulate",
        "--data",
        dir.to_str().unwrap(),
        "--model",
        "nowhere.nrk",
        "--out",
        dir.join("x").to_str().unwrap(),
    ]);
    assert!(err.contains("cannot read nowhere.nrk"), "{err}");
    let d = dir.to_str().unwrap();
    let events = |csv: &str| std::fs::write(dir.join("events.csv"), csv).unwrap();
    // Logs without a variant column.
    events("user_id,item_id,event,ts\nu1,p1,view,1700000000\n");
    let err = fails(&["report", "--data", d, "--json"]);
    assert!(err.contains("no `variant` column"), "{err}");
    // A propensity that is not a probability is a bad row.
    events("user_id,item_id,event,ts,variant,shown_rank,propensity\nu1,p1,view,1700000000,a,1,0.25\nu2,p1,view,1700000000,b,2,1.5\n");
    let err = fails(&["report", "--data", d, "--json"]);
    assert!(
        err.contains("events.csv:3: column `propensity`: `1.5` is not a probability in (0, 1]"),
        "{err}"
    );
    // A bad rank is a bad row, named, and fails the run unless allowed.
    events("user_id,item_id,event,ts,variant,shown_rank\nu1,p1,view,1700000000,a,1\nu2,p1,view,1700000000,b,0\nu2,p1,purchase,1700000100,b,\n");
    let err = fails(&["report", "--data", d, "--json"]);
    assert!(err.contains("events.csv:3: column `shown_rank`"), "{err}");
    let r = report_json(&dir, &["--max-bad-rows", "1"]);
    assert_eq!(r["visitors_from"], "events");
    assert_eq!(r["bad_rows"], 1);
    assert_eq!(r["variants"]["b"]["converted"], 1);
    let err = fails(&[
        "report",
        "--data",
        d,
        "--json",
        "--baseline",
        "c",
        "--max-bad-rows",
        "1",
    ]);
    assert!(
        err.contains("--baseline `c` is not a variant (a, b)"),
        "{err}"
    );
    // A malformed experiment.json is named.
    std::fs::write(
        dir.join("experiment.json"),
        r#"{"name": "x", "variants": [{"name": "a", "share": 60}, {"name": "b", "share": 30}]}"#,
    )
    .unwrap();
    let err = fails(&["report", "--data", d, "--json", "--max-bad-rows", "1"]);
    assert!(
        err.contains("experiment.json: experiment: variants: the shares add up to 90%"),
        "{err}"
    );
    let err = fails(&[
        "simulate",
        "--data",
        d,
        "--model",
        "m.nrk",
        "--variants",
        "control,best",
        "--out",
        dir.join("x").to_str().unwrap(),
    ]);
    assert!(
        err.contains("cannot read m.nrk") || err.contains("unknown variant `best`"),
        "{err}"
    );
}
