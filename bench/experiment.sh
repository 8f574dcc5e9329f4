#!/usr/bin/env bash
# Issue #19's checks of the experiment loop, repeated over seeds on the
# synthetic shop (3,000 families, the demo's): for each seed, an A/B run
# (control, nestrank) and an A/A run (nestrank, nestrank) of DAYS days
# through `simulate`, each read back by `report --json`. Prints, per seed,
# the true lift, the estimate and its interval, and at the end how often
# the interval held the truth and how often the A/A run was called
# significant.
#
#   bench/experiment.sh [SEEDS] [DAYS] [FIRST]   (default 100 seeds from 1, 7 days)
set -euo pipefail
SEEDS=${1:-100}
DAYS=${2:-7}
FIRST=${3:-1}
B=${BUILDER:-target/builder/model-builder}
W=${WORK:-$(mktemp -d)}
[ -x "$B" ] || cargo build --profile builder -p model-builder
"$B" synth --kind mother-baby --out "$W/shop" --end 2026-11-01 >/dev/null
"$B" build --data "$W/shop" --as-of 2026-11-01 --out "$W/model" \
  --max-items 3000 --k 20 --complement-k 5 >/dev/null
for s in $(seq "$FIRST" $((FIRST + SEEDS - 1))); do
  "$B" simulate --data "$W/shop" --model "$W/model" --days "$DAYS" --seed "$s" \
    --variants control,nestrank --out "$W/ab" >/dev/null
  "$B" report --data "$W/ab" --json > "$W/ab.json"
  "$B" simulate --data "$W/shop" --model "$W/model" --days "$DAYS" --seed "$s" \
    --variants nestrank,nestrank --out "$W/aa" >/dev/null
  "$B" report --data "$W/aa" --json > "$W/aa.json"
  python3 - "$W" "$s" <<'PY'
import json, sys
w, s = sys.argv[1], sys.argv[2]
t = json.load(open(f"{w}/ab/truth.json"))["conversion_rate"]
ab = json.load(open(f"{w}/ab.json"))["lift"]["nestrank"]
aa = json.load(open(f"{w}/aa.json"))["lift"]["nestrank-2"]
true = t["nestrank"] / t["control"] - 1
held = ab["lo"] <= true <= ab["hi"]
print(f"seed {s}: true {true:+.3f} est {ab['estimate']:+.3f} [{ab['lo']:+.3f}, {ab['hi']:+.3f}] held={int(held)} "
      f"ab_sig={int(ab['significant'])} aa {aa['estimate']:+.3f} [{aa['lo']:+.3f}, {aa['hi']:+.3f}] aa_sig={int(aa['significant'])}")
PY
done | tee "$W/seeds.txt"
python3 - "$W/seeds.txt" <<'PY'
import re, sys
rows = open(sys.argv[1]).read().splitlines()
n = len(rows)
held = sum("held=1" in r for r in rows)
ab = sum("ab_sig=1" in r for r in rows)
aa = sum("aa_sig=1" in r for r in rows)
print(f"{n} seeds: the A/B interval held the true lift {held}/{n}; A/B significant {ab}/{n}; "
      f"A/A called significant {aa}/{n} (not significant {100*(n-aa)/n:.1f}%)")
PY
