#!/usr/bin/env python3
"""An independent reader of nestrank blobs, written from FORMAT.md only.

Usage: python3 tests/spec/read_blob.py BLOB

Parses the container and every section of a model (kind 1), profile
(kind 2) or user-table shard (kind 3) blob, checks the checksum, the model id and every count FORMAT.md
states, and prints one JSON object: format_version, kind, model_id, as_of
and, per section, its number of entries. Exits 1, naming what is wrong, on
a blob it cannot read. Standard library only: if this reader and the Rust
one disagree, FORMAT.md is incomplete or one of them is wrong.
"""

import json
import struct
import sys
import zlib

MAGIC = b"NRNK"
MIN_VERSION, VERSION = 1, 4
MAX_BLOB = 256 << 20
MAX_SEQ = 64 << 20
MAX_STRING = 256
NONE32 = 0xFFFFFFFF
EDGES = [-10, -6, -3, 0, 1, 3, 6, 9, 12, 18, 24, 36, 1e6]
FEATURES = {
    "own_recency", "own_weight", "own_intent", "own_session", "similarity",
    "similarity_session", "category_count", "category_share",
    "category_session", "popularity", "trend", "factor", "stage_fit",
    "gender_fit", "brand_affinity", "price_fit", "restock",
    "own_weight_session", "category_recency",
}
MODEL_SECTIONS = {1: "items", 2: "categories", 3: "neighbours", 4: "ranker",
                  5: "factors", 6: "family", 7: "rules", 8: "complements"}
PROFILE_SECTIONS = {1: "baby", 2: "affinities", 3: "embedding", 4: "rebuys"}
TABLE_SECTIONS = {1: "keys", 2: "records"}


class Bad(Exception):
    """A blob this reader cannot read, and why."""


def check(cond, what):
    if not cond:
        raise Bad(what)


def finite(x):
    return x == x and x not in (float("inf"), float("-inf"))


def fnv1a64(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


class Wire:
    """The bincode 1.x wire format: little-endian fixed-width numbers, a u64
    length before every sequence and string."""

    def __init__(self, data, name):
        self.data, self.at, self.name = data, 0, name

    def take(self, n, what):
        check(self.at + n <= len(self.data), f"{self.name}: truncated reading {what}")
        out = self.data[self.at:self.at + n]
        self.at += n
        return out

    def num(self, fmt, what):
        return struct.unpack("<" + fmt, self.take(struct.calcsize(fmt), what))[0]

    def length(self, width, what):
        n = self.num("Q", what + " length")
        check(n * width <= MAX_SEQ, f"{self.name}: {what} too large ({n})")
        check(n * width <= len(self.data) - self.at, f"{self.name}: {what} truncated")
        return n

    def seq(self, fmt, what):
        width = struct.calcsize(fmt)
        n = self.length(width, what)
        return list(struct.unpack(f"<{n}{fmt}", self.take(n * width, what)))

    def string(self, what):
        n = self.length(1, what)
        try:
            return self.take(n, what).decode("utf-8")
        except UnicodeDecodeError:
            raise Bad(f"{self.name}: {what} is not UTF-8")

    def option(self, read, what):
        tag = self.num("B", what + " tag")
        check(tag in (0, 1), f"{self.name}: {what} option tag {tag}")
        return read() if tag == 1 else None

    def items(self, read, what):
        n = self.length(1, what)
        return [read() for _ in range(n)]

    def string_table(self, what):
        text = self.string(what + ".bytes").encode("utf-8")
        ends = self.seq("I", what + ".ends")
        out, start = [], 0
        for end in ends:
            check(start <= end <= len(text), f"{self.name}: {what}: ends decrease or overrun")
            check(end - start <= MAX_STRING, f"{self.name}: {what}: a string over {MAX_STRING} bytes")
            try:
                out.append(text[start:end].decode("utf-8"))
            except UnicodeDecodeError:
                raise Bad(f"{self.name}: {what}: an end is not on a character boundary")
            start = end
        check(start == len(text), f"{self.name}: {what}: the last end is not the length")
        return out

    def done(self):
        check(self.at == len(self.data), f"{self.name}: {len(self.data) - self.at} trailing bytes")


def container(blob):
    check(len(blob) >= 28, "shorter than a header")
    check(blob[:4] == MAGIC, "bad magic")
    check(len(blob) <= MAX_BLOB, "over 256 MiB")
    stored = struct.unpack("<I", blob[-4:])[0]
    check(zlib.crc32(blob[:-4]) & 0xFFFFFFFF == stored, "checksum mismatch")
    version, kind, model_id, as_of, count, reserved = struct.unpack("<HHQiHH", blob[4:24])
    check(MIN_VERSION <= version <= VERSION, f"version {version} (this reader reads {MIN_VERSION}-{VERSION})")
    check(kind in (1, 2, 3), f"kind {kind}")
    check(count <= 16 and reserved == 0, "section count or reserved field")
    table_end = 24 + 12 * count
    check(table_end <= len(blob) - 4, "the section table overruns the blob")
    sections, at, hashed = [], table_end, bytearray()
    for k in range(count):
        sid, res, offset, length = struct.unpack("<HHII", blob[24 + 12 * k:36 + 12 * k])
        check(res == 0, f"section {k}: reserved field")
        check(offset == at, f"section {sid}: a hole or an overlap at {offset}")
        at = offset + length
        check(at <= len(blob) - 4, f"section {sid}: overruns the trailer")
        data = blob[offset:at]
        check(sid not in [s for s, _ in sections], f"section {sid} twice")
        sections.append((sid, data))
        hashed += struct.pack("<H", sid) + data
    check(at == len(blob) - 4, "the last section does not end at the trailer")
    check(fnv1a64(hashed) == model_id, "the model id is not the FNV-1a 64 of the sections")
    return version, kind, model_id, as_of, dict(sections)


def neighbours(data, name, version, n_items):
    w = Wire(data, name)
    if version >= 4:
        lengths = w.seq("H", "lengths")
        width = 2 if n_items <= 65536 else 3
        packed = w.seq("B", "items")
        scores = w.seq("B", "scores")
        scale = w.num("f", "scale")
        w.done()
        check(len(lengths) == n_items, f"{name}.lengths vs item ids")
        links = sum(lengths)
        check(len(packed) == links * width, f"{name}.items vs scores x index width")
        check(len(scores) == links, f"{name}.scores vs the sum of lengths")
        index = [int.from_bytes(bytes(packed[k * width:(k + 1) * width]), "little") for k in range(links)]
    else:
        offsets = w.seq("I", "offsets")
        index = w.seq("I", "items")
        scores = w.seq("H", "scores")
        scale = w.num("f", "scale")
        w.done()
        check(len(offsets) == n_items + 1 and offsets[0] == 0, f"{name}.offsets vs item ids")
        check(all(a <= b for a, b in zip(offsets, offsets[1:])), f"{name}.offsets decrease")
        check(offsets[-1] == len(index) == len(scores), f"{name}: offsets, items and scores disagree")
        lengths = [b - a for a, b in zip(offsets, offsets[1:])]
        links = len(index)
    check(all(n <= 1024 for n in lengths), f"{name}: a list over 1024 neighbours")
    check(all(i < n_items for i in index), f"{name}: a neighbour index past the items")
    check(finite(scale) and scale >= 0, f"{name}.scale")
    return links


def model(version, sections):
    for sid in sections:
        check(sid in MODEL_SECTIONS, f"section id {sid}")
    for sid in (1, 2, 3, 4):
        check(sid in sections, f"missing section {MODEL_SECTIONS[sid]}")
    check(version >= 2 or 6 not in sections, "family in a version 1 blob")
    check(version >= 3 or (7 not in sections and 8 not in sections), "rules or complements before version 3")
    counts = {}

    w = Wire(sections[1], "items")
    ids = w.string_table("items.ids")
    category = w.seq("I", "category")
    conversions = w.seq("I", "conversions_7d")
    trend = w.seq("f", "trend")
    conversions_max = w.num("I", "conversions_max")
    trend_max = w.num("f", "trend_max")
    w.done()
    n = len(ids)
    check(n <= 1 << 24, "over 2^24 items")
    check(all(a.encode() < b.encode() for a, b in zip(ids, ids[1:])), "item ids not strictly ascending")
    check(len(category) == len(conversions) == len(trend) == n, "items: a column's length is not the item count")
    check(finite(trend_max) and trend_max >= 0 and all(finite(t) and 0 <= t <= trend_max for t in trend), "items.trend")
    check(all(c <= conversions_max for c in conversions), "items.conversions_7d above conversions_max")
    counts["items"] = n

    w = Wire(sections[2], "categories")
    categories = w.string_table("categories")
    w.done()
    check(len(categories) <= 1 << 20, "over 2^20 categories")
    check(all(c < len(categories) or c == NONE32 for c in category), "items.category out of range")
    counts["categories"] = len(categories)

    counts["neighbours"] = neighbours(sections[3], "neighbours", version, n)

    w = Wire(sections[4], "ranker")
    weights4 = w.seq("f", "event_weights")
    half_lives = [w.num("f", "half-life") for _ in range(4)]
    features = w.string_table("ranker.features")
    weights = w.seq("f", "weights")
    w.done()
    check(len(weights4) == 4 and all(finite(x) and x >= 0 for x in weights4), "ranker.event_weights")
    check(all(finite(h) and h > 0 for h in half_lives), "ranker half-lives")
    check(len(weights) == len(features) and all(finite(x) for x in weights), "ranker.weights vs features")
    check(all(f in FEATURES for f in features), "ranker: an unknown feature")
    counts["ranker"] = len(features)

    if 5 in sections:
        w = Wire(sections[5], "factors")
        dim = w.num("I", "dim")
        codes = w.seq("b", "codes")
        scales = w.seq("f", "scales")
        gram = w.seq("f", "gram")
        rest = [w.num("f", "regularization"), w.num("f", "alpha")]
        event_weights = w.seq("f", "factors.event_weights")
        w.done()
        check(dim > 0 and len(codes) == n * dim and len(scales) == n, "factors: codes or scales vs items x dim")
        check(len(gram) == dim * dim and all(finite(x) for x in gram + scales + rest), "factors.gram")
        check(len(event_weights) == 4, "factors.event_weights")
        counts["factors"] = n

    if 6 in sections:
        w = Wire(sections[6], "family")
        brands = w.string_table("family.brands")
        brand = w.seq("I", "brand")
        gender = w.seq("B", "gender")
        edges = w.seq("f", "edges")
        lifts = w.seq("B", "lifts")
        price = w.seq("f", "price")
        restock = w.seq("f", "restock_days")
        w.done()
        check(len(brand) == len(gender) == len(price) == n, "family: a column's length is not the item count")
        check(all(b < len(brands) or b == NONE32 for b in brand), "family.brand out of range")
        check(all(g in (0, 1, 2) for g in gender), "family.gender")
        check(edges == [float(e) for e in EDGES], "family.edges")
        check(len(lifts) in (0, n * (len(EDGES) - 1)), "family.lifts vs items x 12")
        check(all(finite(p) and p >= 0 for p in price), "family.price")
        check(len(restock) == len(categories), "family.restock_days vs categories")
        check(all(d == -1 or 0 <= d <= 3650 for d in restock), "family.restock_days")
        counts["family"] = len(brands)

    if 7 in sections:
        w = Wire(sections[7], "rules")
        text = lambda: w.string("a name")
        f32 = lambda: w.num("f", "a number")
        pins = w.items(lambda: (text(), w.num("I", "slot")), "pins")
        boosts = w.items(lambda: (w.option(text, "item"), w.option(text, "brand"),
                                  w.option(text, "category"), w.option(f32, "times"),
                                  w.option(f32, "add")), "boosts")
        filtered = w.items(text, "filter")
        caps = w.items(lambda: (text(), w.num("I", "max"), w.num("I", "window")), "diversity")
        explore = w.option(lambda: w.seq("I", "slots"), "explore")
        w.done()
        check(all(slot >= 1 for _, slot in pins), "rules: a pin's slot below 1")
        for k, (item, brand, cat, times, add) in enumerate(boosts):
            check(sum(x is not None for x in (item, brand, cat)) == 1, f"rules: boosts[{k}] names not exactly one target")
            check((times is None) != (add is None), f"rules: boosts[{k}] gives not exactly one of times and add")
            check(times is None or 0 <= times <= 10, f"rules: boosts[{k}]: times outside [0, 10]")
            check(add is None or -10 <= add <= 10, f"rules: boosts[{k}]: add outside [-10, 10]")
        for k, (by, most, window) in enumerate(caps):
            check(by in ("brand", "category") and 2 <= window <= 50 and 1 <= most < window, f"rules: diversity[{k}]")
        check(explore is None or all(1 <= s <= 20 for s in explore), "rules: exploration slots")
        check(max(len(pins), len(boosts), len(caps)) <= 1000 and len(filtered) <= 100000, "rules: too many")
        counts["rules"] = len(pins) + len(boosts) + len(filtered) + len(caps)

    if 8 in sections:
        counts["complements"] = neighbours(sections[8], "complements", version, n)
    return counts


def profile(sections):
    for sid in sections:
        check(sid in PROFILE_SECTIONS, f"profile section id {sid}")
    check(1 in sections, "missing section baby")
    w = Wire(sections[1], "baby")
    birth, gender = w.num("i", "birth_day"), w.num("B", "gender")
    w.done()
    check(gender in (0, 1, 2), "baby.gender")
    counts = {"baby": 1}
    if 2 in sections:
        w = Wire(sections[2], "affinities")
        brands = w.string_table("affinities.brands")
        brand_weights = w.seq("f", "brand_weights")
        cats = w.string_table("affinities.categories")
        cat_weights = w.seq("f", "category_weights")
        low, high = w.num("f", "price_low"), w.num("f", "price_high")
        w.done()
        for names, weights, what in ((brands, brand_weights, "brands"), (cats, cat_weights, "categories")):
            check(len(names) <= 256 and len(weights) == len(names), f"affinities.{what} vs weights")
            check(all(a.encode() < b.encode() for a, b in zip(names, names[1:])), f"affinities.{what} not ascending")
            check(all(0 <= x <= 1 for x in weights), f"affinities.{what} weights outside 0..=1")
        check(0 <= low <= high, "affinities: price range")
        counts["affinities"] = len(brands) + len(cats)
    if 3 in sections:
        w = Wire(sections[3], "embedding")
        w.num("Q", "model_id")
        scale = w.num("f", "scale")
        codes = w.seq("b", "codes")
        weight = w.num("f", "weight")
        w.num("I", "events")
        w.done()
        check(1 <= len(codes) <= 256, "embedding.codes")
        check(finite(scale) and finite(weight), "embedding: not finite")
        check(scale >= 0 and weight >= 0, "embedding: negative")
        counts["embedding"] = len(codes)
    if 4 in sections:
        w = Wire(sections[4], "rebuys")
        cats = w.string_table("rebuys.categories")
        days = w.seq("i", "days")
        w.done()
        check(len(cats) <= 256 and len(days) == len(cats), "rebuys.categories vs days")
        check(all(a.encode() < b.encode() for a, b in zip(cats, cats[1:])), "rebuys.categories not ascending")
        check(all(-25567 <= d < 84006 for d in days), "rebuys.days outside 1900..2200")
        counts["rebuys"] = len(cats)
    return counts


def user_table(sections):
    for sid in sections:
        check(sid in TABLE_SECTIONS, f"user-table section id {sid}")
    check(1 in sections and 2 in sections, "missing section keys or records")
    w = Wire(sections[1], "keys")
    shard, shards = w.num("I", "shard"), w.num("I", "shards")
    keys = w.seq("Q", "keys")
    w.done()
    check(0 < shards <= 1 << 20 and shard < shards, "keys.shard")
    check(all(a < b for a, b in zip(keys, keys[1:])), "keys not ascending")
    check(all(k % shards == shard for k in keys), "a key of another shard")
    w = Wire(sections[2], "records")
    offsets = w.seq("I", "offsets")
    data = w.take(w.length(1, "bytes"), "bytes")
    w.done()
    check(len(offsets) == len(keys) + 1, "records.offsets vs keys")
    check(offsets[0] == 0 and offsets[-1] == len(data), "records.offsets ends")
    check(all(a <= b for a, b in zip(offsets, offsets[1:])), "records.offsets decrease")
    for k in range(len(keys)):
        _, kind, _, _, profile_sections = container(data[offsets[k]:offsets[k + 1]])
        check(kind == 2, f"record {k} is not a profile")
        profile(profile_sections)
    return {"keys": len(keys), "records": len(keys)}


def main(argv):
    if len(argv) != 2:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    try:
        with open(argv[1], "rb") as f:
            blob = f.read()
        version, kind, model_id, as_of, sections = container(blob)
        counts = {1: model, 2: profile, 3: user_table}[kind](*((version, sections) if kind == 1 else (sections,)))
    except (Bad, OSError) as e:
        print(f"{argv[1]}: {e}", file=sys.stderr)
        return 1
    print(json.dumps({
        "format_version": version,
        "kind": {1: "model", 2: "profile", 3: "user-table"}[kind],
        "model_id": f"{model_id:016x}",
        "as_of_day": as_of,
        "sections": counts,
    }, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
