//! The compact, versioned text encoding of a user's local signals, shared by
//! the page's `localStorage` (`SignalStore`) and the `nr_signals` cookie the
//! edge worker reads. One codec, in the core, so the phone and the edge can
//! never disagree about it.
//!
//! The text is base64url without padding (cookie-safe: `A-Z a-z 0-9 - _`) of:
//!
//! | bytes | what |
//! | --- | --- |
//! | 1 | version, [`CODEC_VERSION`] |
//! | varint | the oldest signal's time, Unix seconds |
//! | varint | number of distinct item ids, at most [`MAX_SIGNALS`] |
//! | per id: varint + bytes | its UTF-8 length (1..=[`MAX_ID_BYTES`]) and bytes |
//! | varint | number of signals, at most [`MAX_SIGNALS`] |
//! | per signal: varint, varint | seconds after the previous signal; `id index << 2 \| event code` |
//! | 4 | CRC-32 (IEEE) of everything before, little-endian |
//!
//! Signals are stored oldest first; varints are LEB128 (at most 10 bytes,
//! no overlong encodings). Everything read is bounded before it is used, and
//! any deviation is a typed [`SignalsError`] naming what and where.

use crate::format::crc32;
use crate::signals::Event;

/// The codec's version. A text of another version is rejected with
/// [`SignalsError::Version`]; a page then starts afresh (signals are a cache
/// of behaviour, not a record anyone must keep).
pub const CODEC_VERSION: u8 = 1;
/// The most signals (and distinct ids) one text may hold.
pub const MAX_SIGNALS: usize = 1024;
/// The longest item id, in UTF-8 bytes: the model's limit.
pub use crate::model::MAX_ID_BYTES;
/// The longest text [`decode`] reads (a cookie is at most 4 KB; a
/// `localStorage` value of `MAX_SIGNALS` signals fits well under this).
pub const MAX_TEXT: usize = 96 * 1024;
/// The latest time a signal may carry (year 2100): a guard against
/// absurd values, not a policy.
pub const MAX_TS: i64 = 4_102_444_800;

/// One signal as the codec keeps it: an owned id, an event, whole seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedSignal {
    /// The item id.
    pub item: String,
    /// What the user did.
    pub event: Event,
    /// Unix seconds.
    pub ts: i64,
}

/// Why a signals text could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignalsError {
    /// The text is longer than [`MAX_TEXT`] (or a caller's limit).
    #[error("signals text is {len} characters, more than the {max} allowed")]
    TooLong {
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The text is empty.
    #[error("signals text is empty")]
    Empty,
    /// A character outside base64url.
    #[error("signals text has a character outside base64url at position {at}")]
    BadCharacter {
        /// Its position.
        at: usize,
    },
    /// Written by another version of the codec.
    #[error("signals text is codec version {got}, this build reads version {expected}")]
    Version {
        /// [`CODEC_VERSION`].
        expected: u8,
        /// The text's.
        got: u8,
    },
    /// The bytes end before `what` is complete.
    #[error("signals text is truncated: it ends inside {what}")]
    Truncated {
        /// What was being read.
        what: &'static str,
    },
    /// The CRC-32 does not match: corrupted or forged.
    #[error("signals text checksum mismatch (stored {stored:08x}, computed {computed:08x}): corrupted or altered")]
    ChecksumMismatch {
        /// The stored CRC.
        stored: u32,
        /// The CRC of the bytes.
        computed: u32,
    },
    /// A count above [`MAX_SIGNALS`].
    #[error("signals text holds {count} {what}, more than the {max} allowed")]
    TooMany {
        /// `ids` or `signals`.
        what: &'static str,
        /// The count.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// An item id that is empty, too long, not UTF-8, holds a control
    /// character or repeats an earlier one.
    #[error("item id {index} is invalid: {why}")]
    BadId {
        /// Which id (in the text's table, or the caller's signal).
        index: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// A signal names an id index past the table.
    #[error("signal {index} names item id {id}, but the text holds {ids} ids")]
    BadIdIndex {
        /// Which signal.
        index: usize,
        /// The index it names.
        id: u64,
        /// The table's size.
        ids: usize,
    },
    /// A time below 0, above [`MAX_TS`], or a varint overflow.
    #[error("signal {index} has a time outside 1970..2100")]
    BadTime {
        /// Which signal.
        index: usize,
    },
    /// A varint longer than 10 bytes or overlong.
    #[error("signals text has a malformed number at byte {at}")]
    BadVarint {
        /// Its byte offset.
        at: usize,
    },
    /// Bytes left between the last signal and the checksum.
    #[error("signals text has {count} unexpected bytes after the last signal")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn b64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'-' => Some(62),
        b'_' => Some(63),
        _ => None,
    }
}

fn b64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for k in 0..=chunk.len() {
            out.push(B64[((n >> (18 - 6 * k)) & 63) as usize] as char);
        }
    }
    out
}

fn b64_decode(text: &str) -> Result<Vec<u8>, SignalsError> {
    let t = text.as_bytes();
    if t.len() % 4 == 1 {
        return Err(SignalsError::Truncated {
            what: "the base64 text",
        });
    }
    let mut out = Vec::with_capacity(t.len() / 4 * 3 + 2);
    for (c, chunk) in t.chunks(4).enumerate() {
        let mut n = 0u32;
        for (k, &ch) in chunk.iter().enumerate() {
            let v = b64_value(ch).ok_or(SignalsError::BadCharacter { at: c * 4 + k })?;
            n |= u32::from(v) << (18 - 6 * k);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..chunk.len() - 1]);
    }
    Ok(out)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self, what: &'static str) -> Result<u64, SignalsError> {
        let start = self.at;
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let Some(&b) = self.bytes.get(self.at) else {
                return Err(SignalsError::Truncated { what });
            };
            self.at += 1;
            let low = u64::from(b & 0x7f);
            if shift == 63 && low > 1 {
                return Err(SignalsError::BadVarint { at: start });
            }
            v |= low << shift;
            if b & 0x80 == 0 {
                // An overlong encoding (a trailing zero byte) is not canonical.
                if b == 0 && shift > 0 {
                    return Err(SignalsError::BadVarint { at: start });
                }
                return Ok(v);
            }
        }
        Err(SignalsError::BadVarint { at: start })
    }

    fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], SignalsError> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or(SignalsError::Truncated { what })?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }
}

/// Why an id may not be stored, if it may not.
pub fn id_problem(id: &str) -> Option<&'static str> {
    if id.is_empty() {
        Some("it is empty")
    } else if id.len() > MAX_ID_BYTES {
        Some("it is longer than 256 bytes")
    } else if id.chars().any(char::is_control) {
        Some("it holds a control character")
    } else {
        None
    }
}

/// Encodes signals (any order; stored oldest first), keeping only the
/// newest [`MAX_SIGNALS`] and, when `max_chars` is given, the newest that fit
/// in that many characters. An invalid id or a time outside 1970..2100 is an
/// error naming the signal.
pub fn encode(signals: &[OwnedSignal], max_chars: Option<usize>) -> Result<String, SignalsError> {
    for (index, s) in signals.iter().enumerate() {
        if let Some(why) = id_problem(&s.item) {
            return Err(SignalsError::BadId { index, why });
        }
        if !(0..=MAX_TS).contains(&s.ts) {
            return Err(SignalsError::BadTime { index });
        }
    }
    // Oldest first, ties in the given order (times are checked to fit 32
    // bits above).
    let mut keys: Vec<u64> = signals
        .iter()
        .enumerate()
        .map(|(i, s)| (s.ts as u64) << 32 | i as u64)
        .collect();
    crate::numeric::sort_u64(&mut keys);
    let order: Vec<usize> = keys.iter().map(|&k| k as u32 as usize).collect();
    let keep_at_most = order.len().min(MAX_SIGNALS);
    let newest = |k: usize| &order[order.len() - k..];
    let text = encode_sorted(signals, newest(keep_at_most));
    let Some(max) = max_chars else {
        return Ok(text);
    };
    if text.len() <= max {
        return Ok(text);
    }
    // The most newest signals that fit: the length grows with the count.
    let (mut lo, mut hi) = (0usize, keep_at_most);
    while lo < hi {
        let mid = (lo + hi).div_ceil(2);
        if encode_sorted(signals, newest(mid)).len() <= max {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    let text = encode_sorted(signals, newest(lo));
    if text.len() > max {
        return Err(SignalsError::TooLong {
            len: text.len(),
            max,
        });
    }
    Ok(text)
}

fn encode_sorted(signals: &[OwnedSignal], order: &[usize]) -> String {
    let mut ids: Vec<&str> = Vec::new();
    let mut index: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    let mut id_of: Vec<u64> = Vec::with_capacity(order.len());
    for &i in order {
        let item = signals[i].item.as_str();
        let k = *index.entry(item).or_insert_with(|| {
            ids.push(item);
            ids.len() as u64 - 1
        });
        id_of.push(k);
    }
    let mut out = vec![CODEC_VERSION];
    let base = order.first().map_or(0, |&i| signals[i].ts);
    put_varint(&mut out, base as u64);
    put_varint(&mut out, ids.len() as u64);
    for id in &ids {
        put_varint(&mut out, id.len() as u64);
        out.extend_from_slice(id.as_bytes());
    }
    put_varint(&mut out, order.len() as u64);
    let mut prev = base;
    for (&i, &k) in order.iter().zip(&id_of) {
        let s = &signals[i];
        put_varint(&mut out, (s.ts - prev) as u64);
        put_varint(&mut out, (k << 2) | s.event as u64);
        prev = s.ts;
    }
    let crc = crc32(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    b64_encode(&out)
}

/// Decodes a text written by [`encode`]: signals oldest first.
pub fn decode(text: &str) -> Result<Vec<OwnedSignal>, SignalsError> {
    if text.is_empty() {
        return Err(SignalsError::Empty);
    }
    if text.len() > MAX_TEXT {
        return Err(SignalsError::TooLong {
            len: text.len(),
            max: MAX_TEXT,
        });
    }
    let bytes = b64_decode(text)?;
    let version = bytes[0];
    if version != CODEC_VERSION {
        return Err(SignalsError::Version {
            expected: CODEC_VERSION,
            got: version,
        });
    }
    if bytes.len() < 5 {
        return Err(SignalsError::Truncated {
            what: "the checksum",
        });
    }
    let (body, tail) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]);
    let computed = crc32(body);
    if stored != computed {
        return Err(SignalsError::ChecksumMismatch { stored, computed });
    }
    let mut r = Reader { bytes: body, at: 1 };
    let base = r.varint("the base time")?;
    if base > MAX_TS as u64 {
        return Err(SignalsError::BadTime { index: 0 });
    }
    let id_count = r.varint("the id count")?;
    if id_count > MAX_SIGNALS as u64 {
        return Err(SignalsError::TooMany {
            what: "ids",
            count: id_count,
            max: MAX_SIGNALS,
        });
    }
    let mut ids: Vec<&str> = Vec::with_capacity(id_count as usize);
    for index in 0..id_count as usize {
        let len = r.varint("an id length")?;
        if len == 0 || len > MAX_ID_BYTES as u64 {
            return Err(SignalsError::BadId {
                index,
                why: "its length is not 1..=256 bytes",
            });
        }
        let raw = r.bytes(len as usize, "an id")?;
        let id = std::str::from_utf8(raw).map_err(|_| SignalsError::BadId {
            index,
            why: "it is not UTF-8",
        })?;
        if let Some(why) = id_problem(id) {
            return Err(SignalsError::BadId { index, why });
        }
        if ids.contains(&id) {
            return Err(SignalsError::BadId {
                index,
                why: "it repeats an earlier id",
            });
        }
        ids.push(id);
    }
    let count = r.varint("the signal count")?;
    if count > MAX_SIGNALS as u64 {
        return Err(SignalsError::TooMany {
            what: "signals",
            count,
            max: MAX_SIGNALS,
        });
    }
    let mut out = Vec::with_capacity(count as usize);
    let mut ts = base;
    for index in 0..count as usize {
        let delta = r.varint("a signal's time")?;
        ts = ts
            .checked_add(delta)
            .filter(|&t| t <= MAX_TS as u64)
            .ok_or(SignalsError::BadTime { index })?;
        let packed = r.varint("a signal's item")?;
        let id = packed >> 2;
        let item = *ids.get(id as usize).ok_or(SignalsError::BadIdIndex {
            index,
            id,
            ids: ids.len(),
        })?;
        let event = Event::from_code((packed & 3) as u8).expect("two bits are a valid event");
        out.push(OwnedSignal {
            item: item.to_string(),
            event,
            ts: ts as i64,
        });
    }
    if r.at != body.len() {
        return Err(SignalsError::TrailingBytes {
            count: body.len() - r.at,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sig(item: &str, event: Event, ts: i64) -> OwnedSignal {
        OwnedSignal {
            item: item.into(),
            event,
            ts,
        }
    }

    /// The bytes of a text, checksum appended, as base64url.
    fn text_of(body: &[u8]) -> String {
        let mut b = body.to_vec();
        b.extend_from_slice(&crc32(body).to_le_bytes());
        b64_encode(&b)
    }

    #[test]
    fn round_trip_sorts_oldest_first_and_shares_ids() {
        let s = vec![
            sig("b", Event::Cart, 1_700_000_100),
            sig("a", Event::View, 1_700_000_000),
            sig("b", Event::View, 1_700_000_050),
        ];
        let text = encode(&s, None).unwrap();
        assert!(text
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
        let back = decode(&text).unwrap();
        assert_eq!(back, vec![s[1].clone(), s[2].clone(), s[0].clone()]);
        assert_eq!(decode(&encode(&[], None).unwrap()).unwrap(), vec![]);
    }

    #[test]
    fn base64_round_trips_every_length() {
        for n in 0..10u8 {
            let b: Vec<u8> = (0..n).map(|k| k.wrapping_mul(97)).collect();
            assert_eq!(b64_decode(&b64_encode(&b)).unwrap(), b);
        }
    }

    #[test]
    fn limit_keeps_the_newest_that_fit() {
        let s: Vec<_> = (0..300)
            .map(|k| sig(&format!("item{k}"), Event::View, 1_700_000_000 + k))
            .collect();
        let text = encode(&s, Some(400)).unwrap();
        assert!(text.len() <= 400);
        let back = decode(&text).unwrap();
        assert!(back.len() > 10 && back.len() < 300);
        assert_eq!(back.last().unwrap().item, "item299");
        assert_eq!(
            encode(&s, Some(3)),
            Err(SignalsError::TooLong { len: 11, max: 3 })
        );
    }

    #[test]
    fn keeps_at_most_max_signals() {
        let s: Vec<_> = (0..MAX_SIGNALS as i64 + 5)
            .map(|k| sig("x", Event::View, k))
            .collect();
        let back = decode(&encode(&s, None).unwrap()).unwrap();
        assert_eq!(back.len(), MAX_SIGNALS);
        assert_eq!(back[0].ts, 5);
    }

    #[test]
    fn encode_rejects_bad_ids_and_times() {
        assert_eq!(
            encode(&[sig("", Event::View, 1)], None),
            Err(SignalsError::BadId {
                index: 0,
                why: "it is empty"
            })
        );
        assert!(matches!(
            encode(
                &[sig("a", Event::View, 1), sig("a\u{1f}", Event::View, 1)],
                None
            ),
            Err(SignalsError::BadId { index: 1, .. })
        ));
        assert!(matches!(
            encode(&[sig(&"x".repeat(257), Event::View, 1)], None),
            Err(SignalsError::BadId { index: 0, .. })
        ));
        assert_eq!(
            encode(&[sig("a", Event::View, -1)], None),
            Err(SignalsError::BadTime { index: 0 })
        );
        assert_eq!(
            encode(&[sig("a", Event::View, MAX_TS + 1)], None),
            Err(SignalsError::BadTime { index: 0 })
        );
    }

    #[test]
    fn every_decode_error() {
        assert_eq!(decode(""), Err(SignalsError::Empty));
        assert!(matches!(
            decode(&"A".repeat(MAX_TEXT + 1)),
            Err(SignalsError::TooLong { .. })
        ));
        assert_eq!(decode("AQ=="), Err(SignalsError::BadCharacter { at: 2 }));
        assert_eq!(
            decode("AQA"),
            Err(SignalsError::Truncated {
                what: "the checksum"
            })
        );
        assert_eq!(
            decode("A"),
            Err(SignalsError::Truncated {
                what: "the base64 text"
            })
        );
        assert_eq!(
            decode(&text_of(&[2, 0, 0, 0])),
            Err(SignalsError::Version {
                expected: 1,
                got: 2
            })
        );
        let good = encode(&[sig("a", Event::View, 5)], None).unwrap();
        let mut raw = b64_decode(&good).unwrap();
        raw[2] ^= 1;
        assert!(matches!(
            decode(&b64_encode(&raw)),
            Err(SignalsError::ChecksumMismatch { .. })
        ));
        // version, base 0, 1 id "a", 1 signal (0, id 0 view) with a body cut short.
        assert_eq!(
            decode(&text_of(&[1, 0, 1, 1, b'a', 1, 0])),
            Err(SignalsError::Truncated {
                what: "a signal's item"
            })
        );
        assert_eq!(
            decode(&text_of(&[1, 0, 1, 2, b'a'])),
            Err(SignalsError::Truncated { what: "an id" })
        );
        assert!(matches!(
            decode(&text_of(&[1, 0, 0x81, 0x08])),
            Err(SignalsError::TooMany { what: "ids", .. })
        ));
        assert!(matches!(
            decode(&text_of(&[1, 0, 0, 0x81, 0x08])),
            Err(SignalsError::TooMany {
                what: "signals",
                ..
            })
        ));
        assert!(matches!(
            decode(&text_of(&[1, 0, 1, 0])),
            Err(SignalsError::BadId { index: 0, .. })
        ));
        assert!(matches!(
            decode(&text_of(&[1, 0, 1, 1, 0xff, 0])),
            Err(SignalsError::BadId {
                why: "it is not UTF-8",
                ..
            })
        ));
        assert!(matches!(
            decode(&text_of(&[1, 0, 1, 1, 0x07, 0])),
            Err(SignalsError::BadId {
                why: "it holds a control character",
                ..
            })
        ));
        assert!(matches!(
            decode(&text_of(&[1, 0, 2, 1, b'a', 1, b'a', 0])),
            Err(SignalsError::BadId {
                index: 1,
                why: "it repeats an earlier id"
            })
        ));
        assert_eq!(
            decode(&text_of(&[1, 0, 1, 1, b'a', 1, 0, 4])),
            Err(SignalsError::BadIdIndex {
                index: 0,
                id: 1,
                ids: 1
            })
        );
        // 2^33 seconds after 1970 is past 2100.
        assert_eq!(
            decode(&text_of(&[1, 0, 0, 1, 0x80, 0x80, 0x80, 0x80, 0x20, 0])),
            Err(SignalsError::BadTime { index: 0 })
        );
        assert_eq!(
            decode(&text_of(&[1, 0x80, 0x00, 0, 0])),
            Err(SignalsError::BadVarint { at: 1 })
        );
        assert_eq!(
            decode(&text_of(&[
                1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
            ])),
            Err(SignalsError::BadVarint { at: 1 })
        );
        assert_eq!(
            decode(&text_of(&[1, 0, 0, 0, 9, 9])),
            Err(SignalsError::TrailingBytes { count: 2 })
        );
    }

    #[test]
    fn garbage_never_panics() {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..400 {
            let text: String = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    B64[(x % 64) as usize] as char
                })
                .collect();
            let _ = decode(&text);
        }
    }
}
