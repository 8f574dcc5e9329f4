#!/usr/bin/env bash
# ALS fit time of the builder beside the Python `implicit` library on the
# same matrix (bench/als_vs_implicit.py). Installs implicit from PyPI into a
# venv under target/; if PyPI cannot be reached it says so and skips.
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-out/taobao}
venv=target/bench-venv
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import implicit" 2>/dev/null; then
  python3 -m venv "$venv"
  if ! "$venv/bin/pip" install --quiet implicit numpy scipy; then
    echo "notice: PyPI unreachable or implicit not installable; skipping the implicit comparison"
    exit 0
  fi
fi
cutoff=$(( $(date -u -d 2017-12-03 +%s) ))
for spec in "32 10" "64 40"; do
  set -- $spec
  target/builder/model-builder build --data "$data" --as-of 2017-12-03 --out target/bench-als \
    --factors "$1" --alpha "$2" --train-days 0 | grep '^stages' | sed "s/^/nestrank: /"
done
OPENBLAS_NUM_THREADS=1 "$venv/bin/python" bench/als_vs_implicit.py "$data/events.csv" "$cutoff"
