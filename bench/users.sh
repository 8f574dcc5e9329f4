#!/usr/bin/env bash
# `users` at scale (docs/nightly-build.md): for each size, bench/scale.sh's
# synthetic Parquet log and a model built from it (cached), then the
# families' nightly records in memory and on the embedded DataFusion engine
# under a memory limit, side by side in one run, with one salt. Prints wall
# time, peak RSS and families written, and whether the two output folders
# are byte-identical.
# Usage: bench/users.sh [EVENTS...]   (default: 1000000 10000000)
#        MEMORY_LIMIT=4GB ENGINES=embedded bench/users.sh 30000000
set -euo pipefail
cd "$(dirname "$0")/.."
B=target/builder/model-builder
limit=${MEMORY_LIMIT:-4GB}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000 10000000)
work=target/bench-scale
mkdir -p "$work"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(uname -sr); commit $(git rev-parse --short HEAD)"
engines=(${ENGINES:-memory embedded})
printf '%-11s %-9s %9s %9s %9s %12s\n' events engine wall peak_rss families profile_bytes
for n in "${sizes[@]}"; do
  data=$work/events-$n-splitmix
  if [ ! -d "$data/events" ]; then
    rm -rf "$data"
    $B synth --out "$data" --events "$n" --users $((n / 10)) --items 50000 --format parquet >/dev/null
  fi
  model=$work/users-model-$n
  if [ ! -f "$model/manifest.json" ]; then
    $B build --data "$data" --as-of 2026-11-01 --out "$model" --train-days 0 \
      --engine embedded --memory-limit "$limit" --spill-dir "$work/spill" >/dev/null 2>&1
  fi
  for engine in "${engines[@]}"; do
    flags=(--engine "$engine")
    [ "$engine" = embedded ] && flags+=(--memory-limit "$limit" --spill-dir "$work/spill")
    out=$work/users-$n-$engine
    log=$work/users-$n-$engine.log
    rm -rf "$out"
    if ! /usr/bin/time -v $B users --data "$data" --model "$model" --out "$out" --salt 5eed \
      --json "${flags[@]}" >"$log" 2>&1; then
      printf '%-11s %-9s FAILED: %s\n' "$n" "$engine" "$(grep -m1 '^error' "$log" | cut -c1-160)"
      continue
    fi
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$log")
    rss=$(awk '/Maximum resident set size/ {printf "%.2fGB", $6 / 1e6}' "$log")
    json=$(grep -m1 '^{' "$log")
    users=$(sed -n 's/.*"users":\([0-9]*\).*/\1/p' <<<"$json")
    bytes=$(sed -n 's/.*"profile_bytes":\([0-9]*\).*/\1/p' <<<"$json")
    printf '%-11s %-9s %9s %9s %9s %12s\n' "$n" "$engine" "$wall" "$rss" "$users" "$bytes"
  done
  [ ${#engines[@]} -eq 2 ] || continue
  diff -rq "$work/users-$n-memory" "$work/users-$n-embedded" >/dev/null \
    && echo "  the same files, byte for byte, in memory and on the engine" \
    || echo "  DIFFERENT files in memory and on the engine"
done
