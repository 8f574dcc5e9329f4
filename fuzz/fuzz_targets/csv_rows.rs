//! Any bytes as items.csv and events.csv (split at the first NUL): the
//! loader reports bad rows or fails with an error, never panics; every row
//! is either an event or a reported bad row.
#![no_main]
use libfuzzer_sys::fuzz_target;
use model_builder::data::Dataset;
use model_builder::rows::{BadRowPolicy, CsvFile};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let (items, events) = match data.iter().position(|&b| b == 0) {
        Some(k) => (Some(&data[..k]), &data[k + 1..]),
        None => (None, data),
    };
    let open = |name: &str, bytes: &[u8]| {
        CsvFile::from_reader(
            Path::new(name),
            Box::new(std::io::Cursor::new(bytes.to_vec())),
        )
    };
    let items = match items.map(|b| open("items.csv", b)) {
        Some(Ok(c)) => Some(c),
        Some(Err(_)) => return,
        None => None,
    };
    let Ok(events_csv) = open("events.csv", events) else {
        return;
    };
    let policy = BadRowPolicy {
        max_bad_rows: u64::MAX,
    };
    if let Ok(ds) = Dataset::from_csv(items, events_csv, policy) {
        let lines = events.iter().filter(|&&b| b == b'\n').count() + 1;
        assert!(ds.events.len() <= lines);
        assert!(ds.events.windows(2).all(|w| w[0].ts <= w[1].ts));
    }
});
