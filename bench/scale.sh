#!/usr/bin/env bash
# The nightly build at scale (docs/nightly-build.md): for each size, a
# synthetic log written as day partitions of Parquet, then the nightly build
# (ranker trained on 3 days, as shipped) in memory and on the embedded
# DataFusion engine under a memory limit, side by side in one run. Prints
# wall time per stage and peak RSS of each, and for the engine each query's
# wall time (--query-log; what is left of a stage is the builder's own work).
# Usage: bench/scale.sh [EVENTS...]   (default: 1000000 3000000)
#        MEMORY_LIMIT=4GB ENGINES=embedded bench/scale.sh 10000000 30000000 100000000
set -euo pipefail
cd "$(dirname "$0")/.."
B=target/builder/model-builder
limit=${MEMORY_LIMIT:-4GB}
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000 3000000)
work=target/bench-scale
mkdir -p "$work"
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(uname -sr)"
engines=(${ENGINES:-memory embedded})
printf '%-11s %-9s %8s %8s %10s %8s %8s %8s %9s\n' events engine load_s items_s neighbours_s als_s train_s total peak_rss
for n in "${sizes[@]}"; do
  # The cached log is named for synth's generator: rename it when its output changes.
  data=$work/events-$n-splitmix
  if [ ! -d "$data/events" ]; then
    rm -rf "$data"
    $B synth --out "$data" --events "$n" --users $((n / 10)) --items 50000 --format parquet >/dev/null
  fi
  for engine in "${engines[@]}"; do
    flags=(--engine "$engine")
    queries=$work/queries-$n-$engine.jsonl
    rm -f "$queries"
    [ "$engine" = embedded ] && flags+=(--memory-limit "$limit" --spill-dir "$work/spill" --query-log "$queries")
    log=$work/build-$n-$engine.log
    rm -rf "$work/model-$n-$engine"
    if ! /usr/bin/time -v $B build --data "$data" --as-of 2026-11-01 --out "$work/model-$n-$engine" \
      "${flags[@]}" >"$log" 2>&1; then
      printf '%-11s %-9s FAILED after %s: %s\n' "$n" "$engine" \
        "$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$log")" \
        "$(grep -m1 '^error' "$log" | cut -c1-160)"
      continue
    fi
    # "built ... in 1.23s load + 4.56s build + ..."; "stages: items 0.12s, neighbours 3.45s, ALS (...) 6.78s"
    load=$(sed -n 's/.* in \([0-9.]*\)s load.*/\1/p' "$log")
    items=$(sed -n 's/^stages: items \([0-9.]*\)s.*/\1/p' "$log")
    neigh=$(sed -n 's/.*neighbours \([0-9.]*\)s.*/\1/p' "$log")
    als=$(sed -n 's/.*ALS ([^)]*) \([0-9.]*\)s.*/\1/p' "$log")
    train=$(sed -n 's/.* + \([0-9.]*\)s ranker training.*/\1/p' "$log")
    wall=$(sed -n 's/.*Elapsed (wall clock) time (h:mm:ss or m:ss): //p' "$log")
    rss=$(awk '/Maximum resident set size/ {printf "%.2fGB", $6 / 1e6}' "$log")
    printf '%-11s %-9s %8s %8s %10s %8s %8s %8s %9s\n' "$n" "$engine" "$load" "$items" "$neigh" "$als" "$train" "$wall" "$rss"
    # The engine's share of each stage: its queries' wall time.
    [ -f "$queries" ] && python3 bench/cluster_report.py "$queries" - "$n"
  done
  [ ${#engines[@]} -eq 2 ] && [ -f "$work/model-$n-embedded/manifest.json" ] || continue
  cmp -s <(sed -n 's/.*"model_id": *"\([0-9a-f]*\)".*/\1/p' "$work/model-$n-memory/manifest.json") \
         <(sed -n 's/.*"model_id": *"\([0-9a-f]*\)".*/\1/p' "$work/model-$n-embedded/manifest.json") \
    && echo "  same model id in memory and on the engine" \
    || echo "  DIFFERENT model ids in memory and on the engine"
done
