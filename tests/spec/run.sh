#!/usr/bin/env bash
# FORMAT.md, proven by a second implementation: tests/spec/read_blob.py
# (Python, standard library, written from FORMAT.md only) must read every
# golden blob and a freshly built daily blob (BLOB_DIR, a build's --out),
# agree with the builder's manifest on the model id, and refuse a blob with
# one flipped bit or a missing byte.
set -euo pipefail
cd "$(dirname "$0")/../.."
reader=tests/spec/read_blob.py
dir=${1:?usage: tests/spec/run.sh BLOB_DIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for blob in tests/data/golden-*.nrk tests/data/golden-profile-*.nrp tests/data/golden-*.nrt; do
  echo "$blob: $(python3 "$reader" "$blob")"
done
fresh="$dir/$(sed -n 's/.*"file": *"\([^"]*\)".*/\1/p' "$dir/manifest.json")"
want=$(sed -n 's/.*"model_id": *"\([0-9a-f]*\)".*/\1/p' "$dir/manifest.json")
out=$(python3 "$reader" "$fresh")
echo "$fresh: $out"
grep -q "\"model_id\": \"$want\"" <<<"$out" || {
  echo "the reader's model id is not the manifest's $want" >&2
  exit 1
}
python3 - "$fresh" "$tmp" <<'PY'
import sys
blob = open(sys.argv[1], "rb").read()
flipped = bytearray(blob)
flipped[len(blob) // 2] ^= 0x10
open(sys.argv[2] + "/flipped.nrk", "wb").write(flipped)
open(sys.argv[2] + "/short.nrk", "wb").write(blob[:-1])
# A sound container whose items section lost its last byte: table, model
# id and CRC rewritten, so only the section's own reading can object.
import struct, zlib
sys.path.insert(0, "tests/spec")
from read_blob import fnv1a64
count = struct.unpack("<H", blob[20:22])[0]
table = [struct.unpack("<HHII", blob[24 + 12 * k:36 + 12 * k]) for k in range(count)]
sections = [(sid, blob[off:off + n]) for sid, _, off, n in table]
sections = [(sid, data[:-1] if sid == 1 else data) for sid, data in sections]
out, at = bytearray(blob[:24]), 24 + 12 * count
for sid, data in sections:
    out += struct.pack("<HHII", sid, 0, at, len(data))
    at += len(data)
for _, data in sections:
    out += data
out[8:16] = struct.pack("<Q", fnv1a64(b"".join(struct.pack("<H", s) + d for s, d in sections)))
out += struct.pack("<I", zlib.crc32(bytes(out)) & 0xFFFFFFFF)
open(sys.argv[2] + "/items-short.nrk", "wb").write(out)
PY
for bad in flipped short items-short; do
  if python3 "$reader" "$tmp/$bad.nrk" 2>"$tmp/err"; then
    echo "the reader accepted a $bad blob" >&2; exit 1
  fi
  echo "$bad blob refused: $(cat "$tmp/err")"
done
