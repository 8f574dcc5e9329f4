#!/usr/bin/env bash
# The nightly build on an Apache Ballista cluster on this machine: one
# scheduler and two executors of one task slot each, all this repo's
# model-builder. For each size (the synthetic Parquet logs of bench/scale.sh):
# the build's wall time per stage, then, from the executors' task logs
# (--task-log) and the builder's query log (--query-log), per query: the
# task-seconds it cost (seconds on one slot, i.e. core-seconds), events per
# core-second, and the bytes and rows its stages wrote to shuffle. The
# sizing in docs/nightly-build.md is computed from these figures.
# Usage: bench/cluster.sh [EVENTS...]   (default: 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
B=target/builder/model-builder
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000000)
work=target/bench-cluster
rm -rf "$work"
mkdir -p "$work" target/bench-scale
echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GiB; $(uname -sr)"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() {
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.2
  done
  echo "nothing listens on 127.0.0.1:$1" >&2
  return 1
}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true' EXIT
sched=$(port)
$B cluster scheduler --bind "127.0.0.1:$sched" >"$work/scheduler.log" 2>&1 &
pids+=($!)
wait_port "$sched"
for k in 1 2; do
  # Flight port p, gRPC port p + 1: find a free pair.
  while :; do p=$(port); [ "$p" -lt 65535 ] && ! (exec 3<>"/dev/tcp/127.0.0.1/$((p + 1))") 2>/dev/null && break; done
  $B cluster executor --scheduler "127.0.0.1:$sched" --bind "127.0.0.1:$p" --cores 1 \
    --work-dir "$work/executor-$k" --task-log "$work/tasks.jsonl" >"$work/executor-$k.log" 2>&1 &
  pids+=($!)
  wait_port "$p"
done
sleep 3 # the executors' first heartbeats
for n in "${sizes[@]}"; do
  data=target/bench-scale/events-$n-splitmix   # as bench/scale.sh names it
  if [ ! -d "$data/events" ]; then
    rm -rf "$data"
    $B synth --out "$data" --events "$n" --users $((n / 10)) --items 50000 --format parquet >/dev/null
  fi
  : >"$work/tasks.jsonl"
  log=$work/build-$n.log
  if ! /usr/bin/time -v $B build --data "$data" --as-of 2026-11-01 --out "$work/model-$n" \
    --engine "df://127.0.0.1:$sched" --query-log "$work/queries-$n.jsonl" >"$log" 2>&1; then
    echo "$n events: the build FAILED: $(grep -m1 '^error' "$log" | cut -c1-200)"
    continue
  fi
  cp "$work/tasks.jsonl" "$work/tasks-$n.jsonl"
  echo
  echo "$n events: $(grep -m1 '^built' "$log" | sed 's/.*(model \([0-9a-f]*\),.*) in /model \1 in /')"
  grep -m1 '^stages:' "$log"
  echo "builder peak RSS: $(awk '/Maximum resident set size/ {printf "%.2f GB", $6 / 1e6}' "$log")"
  python3 bench/cluster_report.py "$work/queries-$n.jsonl" "$work/tasks-$n.jsonl" "$n"
done
