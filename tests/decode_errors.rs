//! One test per decode error, each from hand-written bytes.
//!
//! Section payloads are spelled out in the bincode wire format (FORMAT.md):
//! little-endian fixed-width integers, u64 length prefixes. Only the
//! container around them (offsets and the CRC) is computed.

use nestrank::format::{crc32, DecodeError};
use nestrank::Model;

fn u64le(v: u64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn f32s(vals: &[f32]) -> Vec<u8> {
    let mut out = u64le(vals.len() as u64);
    for v in vals {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

/// Items section with zero items: empty id string, empty ends, categories,
/// conversions and trend, then the two maxima (0 and 0.0).
fn empty_items() -> Vec<u8> {
    [0u8; 48].to_vec()
}

/// Categories section with no names.
fn empty_categories() -> Vec<u8> {
    [0u8; 16].to_vec()
}

/// Neighbours for zero items: offsets `[0]`, no items, no scores, scale 1.0.
fn empty_neighbours() -> Vec<u8> {
    let mut b = vec![1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    b.extend_from_slice(&[0u8; 16]);
    b.extend_from_slice(&1.0f32.to_le_bytes());
    b
}

/// A string table in the wire format: the concatenated bytes, then the end offsets.
fn string_table(names: &[&str]) -> Vec<u8> {
    let joined: String = names.concat();
    let mut b = u64le(joined.len() as u64);
    b.extend_from_slice(joined.as_bytes());
    b.extend(u64le(names.len() as u64));
    let mut end = 0u32;
    for n in names {
        end += n.len() as u32;
        b.extend_from_slice(&end.to_le_bytes());
    }
    b
}

/// A ranker section: event weights, three half-lives and the session
/// horizon, feature names, one weight per name.
fn ranker_named(names: &[&str], weights: &[f32]) -> Vec<u8> {
    let mut b = f32s(&[1.0, 2.0, 3.0, 4.0]);
    for h in [24.0f32, 72.0, 6.0, 1.0] {
        b.extend_from_slice(&h.to_le_bytes());
    }
    b.extend(string_table(names));
    b.extend(f32s(weights));
    b
}

fn ranker_with(weights: &[f32]) -> Vec<u8> {
    ranker_named(&["own_recency", "similarity", "popularity"], weights)
}

fn ranker() -> Vec<u8> {
    ranker_with(&[1.0; 3])
}

/// A blob around hand-written sections: 24-byte header, 12-byte table
/// entries, the sections, and the CRC-32 trailer.
fn blob_with(version: u16, kind: u16, sections: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut b = b"NRNK".to_vec();
    b.extend_from_slice(&version.to_le_bytes());
    b.extend_from_slice(&kind.to_le_bytes());
    b.extend_from_slice(&0x0123_4567_89ab_cdefu64.to_le_bytes());
    b.extend_from_slice(&17_503i32.to_le_bytes());
    b.extend_from_slice(&(sections.len() as u16).to_le_bytes());
    b.extend_from_slice(&[0, 0]);
    let mut offset = 24 + 12 * sections.len();
    for (id, data) in sections {
        b.extend_from_slice(&id.to_le_bytes());
        b.extend_from_slice(&[0, 0]);
        b.extend_from_slice(&(offset as u32).to_le_bytes());
        b.extend_from_slice(&(data.len() as u32).to_le_bytes());
        offset += data.len();
    }
    for (_, data) in sections {
        b.extend_from_slice(data);
    }
    seal(b)
}

fn seal(mut b: Vec<u8>) -> Vec<u8> {
    let crc = crc32(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

fn valid_sections() -> Vec<(u16, Vec<u8>)> {
    vec![
        (1, empty_items()),
        (2, empty_categories()),
        (3, empty_neighbours()),
        (4, ranker()),
    ]
}

fn decode(b: &[u8]) -> DecodeError {
    Model::from_bytes(b).expect_err("must be rejected")
}

#[test]
fn hand_written_empty_model_is_valid() {
    let model = Model::from_bytes(&blob_with(1, 1, &valid_sections())).unwrap();
    assert_eq!(model.item_count(), 0);
    assert_eq!(model.model_id(), "0123456789abcdef");
}

#[test]
fn bad_magic() {
    let e = decode(b"PK\x03\x04 this is a zip file, not a model blob......");
    assert_eq!(
        e,
        DecodeError::BadMagic {
            got: *b"PK\x03\x04"
        }
    );
    assert!(e.to_string().contains("not a nestrank blob"));
}

#[test]
fn truncated_header() {
    assert_eq!(
        decode(b"NRNK\x01\x00"),
        DecodeError::Truncated { what: "header" }
    );
    assert_eq!(decode(b"NR"), DecodeError::Truncated { what: "header" });
}

#[test]
fn checksum_mismatch() {
    let mut b = blob_with(1, 1, &valid_sections());
    let mid = b.len() / 2;
    b[mid] ^= 0x01;
    assert!(matches!(decode(&b), DecodeError::ChecksumMismatch { .. }));
    assert!(decode(&b).to_string().contains("corrupt"));
}

#[test]
fn version_from_the_future() {
    let e = decode(&blob_with(5, 1, &valid_sections()));
    assert_eq!(
        e,
        DecodeError::Version {
            expected: 4,
            got: 5
        }
    );
    assert!(e.to_string().contains("rebuild the model"));
    assert!(e.to_string().contains("reads versions 1 to 4"));
    assert!(matches!(
        decode(&blob_with(0, 1, &valid_sections())),
        DecodeError::Version { got: 0, .. }
    ));
}

/// Version 2 adds the optional `family` section (6); a version 1 blob may
/// not carry it, and its contents are checked like every other section's.
#[test]
fn family_section_is_version_2_and_validated() {
    use nestrank::model::FamilySection;
    let with_family = |version: u16, f: &FamilySection| {
        let mut sections = valid_sections();
        sections.push((6, nestrank::format::encode_section(f)));
        Model::from_bytes(&blob_with(version, 1, &sections))
    };
    let good = FamilySection {
        edges: nestrank::stage::EDGES.to_vec(),
        ..FamilySection::default()
    };
    assert!(Model::from_bytes(&blob_with(2, 1, &valid_sections())).is_ok());
    assert!(with_family(2, &good).unwrap().family().is_some());
    assert_eq!(
        with_family(1, &good).unwrap_err(),
        DecodeError::OutOfRange { what: "section id" }
    );
    let bad_edges = FamilySection {
        edges: vec![0.0, 1.0],
        ..good.clone()
    };
    assert!(matches!(
        with_family(2, &bad_edges).unwrap_err(),
        DecodeError::OutOfRange { what } if what.starts_with("family.edges")
    ));
    let extra_item = FamilySection {
        brand: vec![u32::MAX],
        ..good.clone()
    };
    assert!(matches!(
        with_family(2, &extra_item).unwrap_err(),
        DecodeError::LengthMismatch { .. }
    ));
}

/// Version 3 adds the optional `rules` (7) and `complements` (8)
/// sections; an older blob may not carry them, and their contents are
/// checked like every other section's.
#[test]
fn rules_and_complements_are_version_3_and_validated() {
    use nestrank::model::NeighboursSection;
    use nestrank::rules::{Pin, RuleSet};
    let with = |version: u16, id: u16, data: Vec<u8>| {
        let mut sections = valid_sections();
        sections.push((id, data));
        Model::from_bytes(&blob_with(version, 1, &sections))
    };
    let rules = RuleSet {
        filter: vec!["x".into()],
        ..RuleSet::default()
    };
    use nestrank::format::encode_section as enc;
    assert_eq!(with(3, 7, enc(&rules)).unwrap().rules(), Some(&rules));
    assert_eq!(
        with(2, 7, enc(&rules)).unwrap_err(),
        DecodeError::OutOfRange { what: "section id" }
    );
    let bad = RuleSet {
        pins: vec![Pin {
            item: "x".into(),
            slot: 0,
        }],
        ..RuleSet::default()
    };
    assert!(matches!(
        with(3, 7, enc(&bad)).unwrap_err(),
        DecodeError::Malformed { what: "rules", detail } if detail.contains("pins[0]")
    ));
    let empty = NeighboursSection {
        offsets: vec![0],
        items: vec![],
        scores: vec![],
        scale: 1.0,
    };
    assert!(with(3, 8, enc(&empty)).is_ok());
    assert_eq!(
        with(2, 8, enc(&empty)).unwrap_err(),
        DecodeError::OutOfRange { what: "section id" }
    );
    let dangling = NeighboursSection {
        offsets: vec![0, 0],
        ..empty
    };
    assert_eq!(
        with(3, 8, enc(&dangling)).unwrap_err(),
        DecodeError::LengthMismatch {
            what: "complements.offsets vs item count + 1",
            left: 2,
            right: 1
        }
    );
}

#[test]
fn wrong_kind() {
    assert_eq!(
        decode(&blob_with(1, 2, &valid_sections())),
        DecodeError::WrongKind {
            expected: 1,
            got: 2
        }
    );
}

#[test]
fn too_many_sections() {
    let sections: Vec<(u16, Vec<u8>)> = (0..17).map(|_| (1u16, Vec::new())).collect();
    assert!(matches!(
        decode(&blob_with(1, 1, &sections)),
        DecodeError::TooLarge {
            what: "section count",
            got: 17,
            ..
        }
    ));
}

#[test]
fn truncated_section_table() {
    // Claims 4 sections but ends right after the header.
    let mut b = b"NRNK\x01\x00\x01\x00".to_vec();
    b.extend_from_slice(&[0u8; 12]);
    b.extend_from_slice(&[4, 0, 0, 0]);
    assert_eq!(
        decode(&seal(b)),
        DecodeError::Truncated {
            what: "section table"
        }
    );
}

#[test]
fn layout_hole_between_sections() {
    let mut b = blob_with(1, 1, &valid_sections());
    // Move the second section's offset one byte on: a hole.
    b.truncate(b.len() - 4);
    let at = 24 + 12 + 4;
    let off = u32::from_le_bytes(b[at..at + 4].try_into().unwrap()) + 1;
    b[at..at + 4].copy_from_slice(&off.to_le_bytes());
    assert!(matches!(decode(&seal(b)), DecodeError::Layout { .. }));
}

#[test]
fn layout_bytes_after_last_section() {
    let mut b = blob_with(1, 1, &valid_sections());
    b.truncate(b.len() - 4);
    b.push(0);
    assert!(matches!(decode(&seal(b)), DecodeError::Layout { .. }));
}

#[test]
fn section_past_the_end() {
    let mut b = blob_with(1, 1, &valid_sections());
    b.truncate(b.len() - 4);
    let at = 24 + 3 * 12 + 8; // the last section's length
    b[at..at + 4].copy_from_slice(&1000u32.to_le_bytes());
    assert_eq!(
        decode(&seal(b)),
        DecodeError::Truncated {
            what: "section data"
        }
    );
}

#[test]
fn missing_section() {
    let mut s = valid_sections();
    s.remove(2);
    assert_eq!(
        decode(&blob_with(1, 1, &s)),
        DecodeError::MissingSection { what: "neighbours" }
    );
}

#[test]
fn duplicate_section() {
    let mut s = valid_sections();
    s.push((2, empty_categories()));
    assert_eq!(
        decode(&blob_with(1, 1, &s)),
        DecodeError::DuplicateSection { what: "categories" }
    );
}

#[test]
fn unknown_section_id() {
    let mut s = valid_sections();
    s.push((99, Vec::new()));
    assert_eq!(
        decode(&blob_with(1, 1, &s)),
        DecodeError::OutOfRange { what: "section id" }
    );
}

#[test]
fn truncated_section_payload() {
    let mut s = valid_sections();
    s[0].1 = vec![0u8; 20]; // the items section stops inside its third field
    assert_eq!(
        decode(&blob_with(1, 1, &s)),
        DecodeError::Truncated { what: "items" }
    );
}

#[test]
fn trailing_bytes_in_section() {
    let mut s = valid_sections();
    s[1].1.push(0xAA);
    assert_eq!(
        decode(&blob_with(1, 1, &s)),
        DecodeError::TrailingBytes { what: "categories" }
    );
}

#[test]
fn malformed_utf8_id() {
    let mut items = u64le(2);
    items.extend_from_slice(&[0xC3, 0x28]); // invalid UTF-8
    items.extend(u64le(1));
    items.extend_from_slice(&2u32.to_le_bytes());
    items.extend_from_slice(&[0u8; 32]);
    let mut s = valid_sections();
    s[0].1 = items;
    assert!(matches!(
        decode(&blob_with(1, 1, &s)),
        DecodeError::Malformed { what: "items", .. }
    ));
}

#[test]
fn huge_length_prefix_is_capped_before_allocating() {
    let mut s = valid_sections();
    // A neighbour list claiming 2^40 entries: rejected, nothing allocated.
    s[2].1 = [u64le(1u64 << 40), vec![0u8; 8]].concat();
    let e = decode(&blob_with(1, 1, &s));
    assert!(
        matches!(
            e,
            DecodeError::TooLarge {
                what: "neighbours",
                ..
            } | DecodeError::Truncated { what: "neighbours" }
        ),
        "{e:?}"
    );
}

/// One item `a`, category 0 of one category `c`, no neighbours.
fn one_item(category: u32, trend: f32) -> Vec<u8> {
    let mut b = u64le(1);
    b.push(b'a');
    b.extend(u64le(1));
    b.extend_from_slice(&1u32.to_le_bytes());
    b.extend(u64le(1));
    b.extend_from_slice(&category.to_le_bytes());
    b.extend(u64le(1));
    b.extend_from_slice(&3u32.to_le_bytes());
    b.extend(f32s(&[trend]));
    b.extend_from_slice(&3u32.to_le_bytes()); // conversions_max
    b.extend_from_slice(&10.0f32.to_le_bytes()); // trend_max
    b
}

fn one_category() -> Vec<u8> {
    let mut b = u64le(1);
    b.push(b'c');
    b.extend(u64le(1));
    b.extend_from_slice(&1u32.to_le_bytes());
    b
}

fn neighbours_of_one(offsets: &[u32], items: &[u32]) -> Vec<u8> {
    let mut b = u64le(offsets.len() as u64);
    for o in offsets {
        b.extend_from_slice(&o.to_le_bytes());
    }
    b.extend(u64le(items.len() as u64));
    for i in items {
        b.extend_from_slice(&i.to_le_bytes());
    }
    b.extend(u64le(items.len() as u64));
    for _ in items {
        b.extend_from_slice(&100u16.to_le_bytes());
    }
    b.extend_from_slice(&0.01f32.to_le_bytes());
    b
}

fn one_item_model(items: Vec<u8>, neighbours: Vec<u8>, ranker: Vec<u8>) -> Vec<u8> {
    blob_with(
        1,
        1,
        &[
            (1, items),
            (2, one_category()),
            (3, neighbours),
            (4, ranker),
        ],
    )
}

#[test]
fn hand_written_one_item_model_is_valid() {
    let m = Model::from_bytes(&one_item_model(
        one_item(0, 1.5),
        neighbours_of_one(&[0, 0], &[]),
        ranker(),
    ))
    .unwrap();
    assert_eq!(m.index_of("a"), Some(0));
    assert_eq!(m.category_name(m.category_of(0)), "c");
}

#[test]
fn category_out_of_range() {
    let e = decode(&one_item_model(
        one_item(5, 1.0),
        neighbours_of_one(&[0, 0], &[]),
        ranker(),
    ));
    assert_eq!(
        e,
        DecodeError::OutOfRange {
            what: "items.category"
        }
    );
}

#[test]
fn neighbour_index_out_of_range() {
    let e = decode(&one_item_model(
        one_item(0, 1.0),
        neighbours_of_one(&[0, 1], &[7]),
        ranker(),
    ));
    assert_eq!(
        e,
        DecodeError::OutOfRange {
            what: "neighbours.items"
        }
    );
}

#[test]
fn offsets_length_mismatch() {
    let e = decode(&one_item_model(
        one_item(0, 1.0),
        neighbours_of_one(&[0], &[]),
        ranker(),
    ));
    assert!(matches!(
        e,
        DecodeError::LengthMismatch {
            left: 1,
            right: 2,
            ..
        }
    ));
}

#[test]
fn non_finite_trend() {
    let e = decode(&one_item_model(
        one_item(0, f32::NAN),
        neighbours_of_one(&[0, 0], &[]),
        ranker(),
    ));
    assert_eq!(
        e,
        DecodeError::NonFinite {
            what: "items.trend"
        }
    );
}

#[test]
fn value_above_its_stated_maximum() {
    let e = decode(&one_item_model(
        one_item(0, 11.0), // trend 11 > trend_max 10
        neighbours_of_one(&[0, 0], &[]),
        ranker(),
    ));
    assert!(matches!(e, DecodeError::OutOfRange { .. }), "{e:?}");
}

#[test]
fn non_finite_ranker_weight() {
    let e = decode(&one_item_model(
        one_item(0, 1.0),
        neighbours_of_one(&[0, 0], &[]),
        ranker_with(&[1.0, f32::INFINITY, 1.0]),
    ));
    assert_eq!(
        e,
        DecodeError::NonFinite {
            what: "ranker.weights"
        }
    );
}

#[test]
fn ranker_weights_and_names_disagree() {
    let e = decode(&one_item_model(
        one_item(0, 1.0),
        neighbours_of_one(&[0, 0], &[]),
        ranker_with(&[1.0; 2]),
    ));
    assert!(matches!(
        e,
        DecodeError::LengthMismatch {
            what: "ranker.weights vs ranker.features",
            left: 2,
            right: 3
        }
    ));
}

#[test]
fn ranker_feature_unknown_to_this_build() {
    let e = decode(&one_item_model(
        one_item(0, 1.0),
        neighbours_of_one(&[0, 0], &[]),
        ranker_named(&["own_recency", "horoscope"], &[1.0, 2.0]),
    ));
    assert_eq!(
        e,
        DecodeError::OutOfRange {
            what: "ranker feature name"
        }
    );
}

#[test]
fn ranker_names_a_subset_of_features() {
    // Features a blob does not name weigh zero: older blobs stay readable.
    let m = Model::from_bytes(&one_item_model(
        one_item(0, 1.0),
        neighbours_of_one(&[0, 0], &[]),
        ranker_named(&["popularity"], &[2.5]),
    ))
    .unwrap();
    let w = &m.ranker().weights;
    assert_eq!(w[nestrank::rank::F_POPULARITY], 2.5);
    assert_eq!(w.iter().filter(|&&x| x != 0.0).count(), 1);
}

#[test]
fn factors_of_the_wrong_size() {
    // dim 2 for one item needs 2 codes; this one has 3.
    let mut f = 2u32.to_le_bytes().to_vec();
    f.extend(u64le(3));
    f.extend_from_slice(&[1, 2, 3]);
    f.extend(f32s(&[0.1]));
    f.extend(f32s(&[1.0, 0.0, 0.0, 1.0]));
    f.extend_from_slice(&0.01f32.to_le_bytes());
    f.extend_from_slice(&10.0f32.to_le_bytes());
    f.extend(f32s(&[1.0, 2.0, 3.0, 4.0]));
    let e = decode(&blob_with(
        1,
        1,
        &[
            (1, one_item(0, 1.0)),
            (2, one_category()),
            (3, neighbours_of_one(&[0, 0], &[])),
            (4, ranker()),
            (5, f),
        ],
    ));
    assert_eq!(
        e,
        DecodeError::LengthMismatch {
            what: "factors.codes vs item count * dim",
            left: 3,
            right: 2
        }
    );
}

#[test]
fn unsorted_ids() {
    // Two items "b", "a": not ascending.
    let mut items = u64le(2);
    items.extend_from_slice(b"ba");
    items.extend(u64le(2));
    items.extend_from_slice(&1u32.to_le_bytes());
    items.extend_from_slice(&2u32.to_le_bytes());
    items.extend(u64le(2));
    items.extend_from_slice(&[0xFF; 8]); // no category
    items.extend(u64le(2));
    items.extend_from_slice(&[0u8; 8]);
    items.extend(f32s(&[0.0, 0.0]));
    items.extend_from_slice(&[0u8; 8]);
    let e = decode(&blob_with(
        1,
        1,
        &[
            (1, items),
            (2, empty_categories()),
            (3, neighbours_of_one(&[0, 0, 0], &[])),
            (4, ranker()),
        ],
    ));
    assert_eq!(
        e,
        DecodeError::UnsortedIds {
            what: "item ids",
            index: 1
        }
    );
}

#[test]
fn id_end_inside_a_character_is_out_of_range() {
    let mut items = u64le(2);
    items.extend_from_slice("é".as_bytes());
    items.extend(u64le(1));
    items.extend_from_slice(&1u32.to_le_bytes()); // splits the two-byte é
    items.extend_from_slice(&[0u8; 32]);
    let mut s = valid_sections();
    s[0].1 = items;
    assert_eq!(
        decode(&blob_with(1, 1, &s)),
        DecodeError::OutOfRange { what: "item ids" }
    );
}

#[test]
fn blob_over_the_size_cap() {
    let mut b = vec![0u8; nestrank::format::MAX_BLOB_BYTES + 1];
    b[..4].copy_from_slice(b"NRNK");
    assert!(matches!(
        decode(&b),
        DecodeError::TooLarge {
            what: "blob size",
            ..
        }
    ));
}

/// A version 4 packed table for one item: list lengths (u16), the
/// neighbour indices in 2 bytes each, one score code each, the scale.
fn packed_of_one(lengths: &[u16], index_bytes: &[u8], codes: &[u8]) -> Vec<u8> {
    let mut b = u64le(lengths.len() as u64);
    for l in lengths {
        b.extend_from_slice(&l.to_le_bytes());
    }
    b.extend(u64le(index_bytes.len() as u64));
    b.extend_from_slice(index_bytes);
    b.extend(u64le(codes.len() as u64));
    b.extend_from_slice(codes);
    b.extend_from_slice(&0.01f32.to_le_bytes());
    b
}

fn one_item_v4(neighbours: Vec<u8>, complements: Option<Vec<u8>>) -> Vec<u8> {
    let mut sections = vec![
        (1, one_item(0, 1.0)),
        (2, one_category()),
        (3, neighbours),
        (4, ranker()),
    ];
    sections.extend(complements.map(|c| (8, c)));
    blob_with(4, 1, &sections)
}

#[test]
fn version_4_packed_tables() {
    // Item 0 lists itself once, score code 255 (the top of the range).
    let m = Model::from_bytes(&one_item_v4(
        packed_of_one(&[1], &[0, 0], &[255]),
        Some(packed_of_one(&[0], &[], &[])),
    ))
    .unwrap();
    assert_eq!(m.header().version, 4);
    let row: Vec<(u32, f32)> = m.neighbours(0).collect();
    assert_eq!(row.len(), 1);
    assert_eq!(row[0].0, 0);
    assert!((row[0].1 - 655.35).abs() < 1e-3, "{row:?}");
    // A version 3 table in a version 4 blob does not parse as packed.
    assert!(Model::from_bytes(&one_item_v4(neighbours_of_one(&[0, 0], &[]), None)).is_err());
    let cases: [(Vec<u8>, Option<Vec<u8>>, DecodeError); 5] = [
        (
            packed_of_one(&[1, 0], &[0, 0], &[9]),
            None,
            DecodeError::LengthMismatch {
                what: "neighbours.lengths vs item ids",
                left: 2,
                right: 1,
            },
        ),
        (
            packed_of_one(&[2], &[0, 0, 0, 0], &[9]),
            None,
            DecodeError::LengthMismatch {
                what: "neighbours.scores vs the sum of lengths",
                left: 1,
                right: 2,
            },
        ),
        (
            packed_of_one(&[1], &[0, 0, 0], &[9]),
            None,
            DecodeError::LengthMismatch {
                what: "neighbours.items vs scores x index width",
                left: 3,
                right: 2,
            },
        ),
        (
            packed_of_one(&[1], &[7, 0], &[9]),
            None,
            DecodeError::OutOfRange {
                what: "neighbours.items",
            },
        ),
        (
            packed_of_one(&[0], &[], &[]),
            Some(packed_of_one(&[1], &[1, 0], &[9])),
            DecodeError::OutOfRange {
                what: "complements.items",
            },
        ),
    ];
    for (neighbours, complements, want) in cases {
        assert_eq!(decode(&one_item_v4(neighbours, complements)), want);
    }
}
