"""Joins a build's query log with its executors' task logs (bench/cluster.sh).

Each task is charged to the query that was running when it ended (the
builder runs one query at a time). Prints, per kind of query (its `query`
text): how often it ran, its wall seconds, the task-seconds its tasks took
(core-seconds: each executor has one slot), events per core-second, and
the bytes and rows its stages wrote to shuffle; then the totals. With no
tasks (an embedded build: bench/scale.sh), only the queries' wall seconds
and the rows they returned.
Usage: cluster_report.py QUERIES.jsonl TASKS.jsonl|- EVENTS
"""
import json
import sys
from collections import OrderedDict

queries = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
tasks = [] if sys.argv[2] == "-" else [json.loads(line) for line in open(sys.argv[2]) if line.strip()]
events = int(sys.argv[3])
if not tasks:
    # Per kind of query, also the most its runs held: the engine's pool
    # (pool_peak_bytes, under --memory-limit) and the builder's resident set
    # (rss_peak_bytes, sampled every 50 ms). A query named "..., pass p of
    # P" counts with its other passes.
    walls = OrderedDict()
    for q in queries:
        name = q["query"].split(", pass ")[0]
        w = walls.setdefault(name, [0, 0.0, 0, 0, 0])
        w[0] += 1
        w[1] += (q["end_ms"] - q["start_ms"]) / 1000
        w[2] += q["rows"]
        w[3] = max(w[3], q.get("pool_peak_bytes") or 0)
        w[4] = max(w[4], q.get("rss_peak_bytes") or 0)
    print(f"  {'query':<44} {'runs':>4} {'wall_s':>8} {'rows_out':>10} {'pool_GB':>8} {'rss_GB':>7}")
    for name, (runs, wall, rows, pool, rss) in walls.items():
        print(f"  {name[:44]:<44} {runs:>4} {wall:>8.2f} {rows:>10} {pool / 1e9:>8.2f} {rss / 1e9:>7.2f}")
    print(f"  {'all queries':<44} {len(queries):>4} {sum(w[1] for w in walls.values()):>8.2f}")
    sys.exit(0)
kinds = OrderedDict()
unmatched = 0
for q in queries:
    k = kinds.setdefault(q["query"], dict(runs=0, wall=0.0, secs=0.0, bytes=0, rows=0, tasks=0))
    k["runs"] += 1
    k["wall"] += (q["end_ms"] - q["start_ms"]) / 1000
for t in tasks:
    q = next((q for q in queries if q["start_ms"] <= t["end_ms"] <= q["end_ms"] + 50), None)
    if q is None:
        unmatched += 1
        continue
    k = kinds[q["query"]]
    k["secs"] += t["secs"]
    k["bytes"] += t["bytes"]
    k["rows"] += t["rows"]
    k["tasks"] += 1
print(f"{'query':<44} {'runs':>4} {'wall_s':>8} {'core_s':>8} {'Mev/core_s':>10} {'shuffle_MB':>10} {'shuffle_Mrows':>13}")
tot = dict(wall=0.0, secs=0.0, bytes=0, rows=0)
for name, k in kinds.items():
    rate = events * k["runs"] / k["secs"] / 1e6 if k["secs"] > 0 else float("nan")
    print(f"{name[:44]:<44} {k['runs']:>4} {k['wall']:>8.2f} {k['secs']:>8.2f} {rate:>10.3f} "
          f"{k['bytes'] / 1e6:>10.1f} {k['rows'] / 1e6:>13.2f}")
    for key in tot:
        tot[key] += k[key]
print(f"{'all queries':<44} {len(queries):>4} {tot['wall']:>8.2f} {tot['secs']:>8.2f} "
      f"{events / tot['secs'] / 1e6 if tot['secs'] else float('nan'):>10.3f} "
      f"{tot['bytes'] / 1e6:>10.1f} {tot['rows'] / 1e6:>13.2f}")
print(f"tasks: {len(tasks)} ({unmatched} outside any query)")
