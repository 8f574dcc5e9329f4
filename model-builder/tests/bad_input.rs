//! The bad-input table of the README, CSV rows: each bad input, what it
//! gives (the typed error and its message, or the documented tolerant
//! behaviour), and that no good row around it is lost.

use model_builder::data::Dataset;
use model_builder::rows::{BadRowPolicy, CsvFile};
use std::path::Path;

enum Expect {
    /// The load fails with this message.
    Fatal(&'static str),
    /// These rows are reported (line, column, message fragment); `good`
    /// events are kept.
    BadRows(&'static [(u64, Option<&'static str>, &'static str)], usize),
}

fn load(events: &[u8]) -> anyhow::Result<Dataset> {
    let csv = CsvFile::from_reader(
        Path::new("events.csv"),
        Box::new(std::io::Cursor::new(events.to_vec())),
    )?;
    Dataset::from_csv(
        None,
        csv,
        BadRowPolicy {
            max_bad_rows: u64::MAX,
        },
    )
}

#[test]
fn every_bad_csv_input_is_named_and_nothing_good_is_lost() {
    let long_id = "x".repeat(1 << 20);
    let one_mb_line = format!("user_id,item_id,event,ts\nu1,{long_id},view,100\nu1,a,view,101\n");
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        ("missing column", b"user_id,item_id,event\nu1,a,view\n".to_vec(), Expect::Fatal("events.csv:1: required column `ts` is missing")),
        ("duplicate header", b"user_id,item_id,item_id,event,ts\n".to_vec(), Expect::Fatal("events.csv:1: duplicate column `item_id` in header")),
        ("empty file", b"".to_vec(), Expect::Fatal("events.csv: empty file, a header line is required")),
        ("header not UTF-8", b"user_id,item\xff,event,ts\n".to_vec(), Expect::Fatal("events.csv:1: header is not UTF-8")),
        ("bad timestamp", b"user_id,item_id,event,ts\nu1,a,view,yesterday\nu1,a,view,100\n".to_vec(),
            Expect::BadRows(&[(2, Some("ts"), "timestamp `yesterday` is not an integer number of Unix seconds")], 1)),
        ("timestamp out of range", b"user_id,item_id,event,ts\nu1,a,view,99999999999\nu1,a,view,100\n".to_vec(),
            Expect::BadRows(&[(2, Some("ts"), "timestamp 99999999999 is outside 1970..2100")], 1)),
        ("unknown event type", b"user_id,item_id,event,ts\nu1,a,buy,100\nu1,a,cart,101\n".to_vec(),
            Expect::BadRows(&[(2, Some("event"), "unknown event `buy` (expected view, fav, cart or purchase)")], 1)),
        ("non-UTF-8 field", b"user_id,item_id,event,ts\nu1,\xe9t\xe9,view,100\nu1,a,view,101\n".to_vec(),
            Expect::BadRows(&[(2, Some("item_id"), "not valid UTF-8")], 1)),
        ("1 MB line", one_mb_line.into_bytes(),
            Expect::BadRows(&[(2, Some("item_id"), "id of 1048576 bytes, over the 256-byte limit")], 1)),
        ("too few fields", b"user_id,item_id,event,ts\nu1,a\nu1,a,view,100\n".to_vec(),
            Expect::BadRows(&[(2, Some("event"), "2 field(s) where the header has 4")], 1)),
        ("empty id", b"user_id,item_id,event,ts\n,a,view,100\nu1,a,view,100\n".to_vec(),
            Expect::BadRows(&[(2, Some("user_id"), "empty id")], 1)),
        ("several bad rows, each named", b"user_id,item_id,event,ts\nu1,a,like,1\nu2,b,view,x\nu3,c,view,3\n".to_vec(),
            Expect::BadRows(&[(2, Some("event"), "unknown event `like`"), (3, Some("ts"), "timestamp `x`")], 1)),
        // Tolerated, as documented.
        ("byte-order mark, CRLF, blank lines, quotes, extra fields",
            b"\xef\xbb\xbfuser_id,item_id,event,ts\r\nu1,\"a,1\",view,100\r\n\r\nu1,b,cart,101,extra\r\n".to_vec(),
            Expect::BadRows(&[], 2)),
        ("padding spaces", b"user_id,item_id,event,ts\n u1 , a , view , 100 \n".to_vec(), Expect::BadRows(&[], 1)),
    ];
    for (case, (name, input, expect)) in cases.into_iter().enumerate() {
        let result = load(&input);
        match expect {
            Expect::Fatal(msg) => {
                let err = format!(
                    "{:#}",
                    result
                        .err()
                        .unwrap_or_else(|| panic!("{name}: should fail"))
                );
                assert!(err.contains(msg), "{name}: {err}");
            }
            Expect::BadRows(rows, good) => {
                // The loader reports each bad row to stderr and counts it;
                // the rows themselves are checked through the CLI below.
                let ds = result.unwrap_or_else(|e| panic!("{name}: {e:#}"));
                assert_eq!(ds.bad_rows, rows.len(), "{name}: bad rows");
                assert_eq!(ds.events.len(), good, "{name}: good rows kept");
                let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bad-input-{case}"));
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(dir.join("events.csv"), &input).unwrap();
                let out = std::process::Command::new(env!("CARGO_BIN_EXE_model-builder"))
                    .args([
                        "eval",
                        "--days",
                        "1",
                        "--max-bad-rows",
                        "100",
                        "--data",
                        dir.to_str().unwrap(),
                    ])
                    .output()
                    .unwrap();
                let stderr = String::from_utf8_lossy(&out.stderr);
                for (line, column, fragment) in rows {
                    let place = match column {
                        Some(c) => format!("events.csv:{line}: column `{c}`: {fragment}"),
                        None => format!("events.csv:{line}: {fragment}"),
                    };
                    assert!(stderr.contains(&place), "{name}: `{place}` not in {stderr}");
                }
            }
        }
    }
}
