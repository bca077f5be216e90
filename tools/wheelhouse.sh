#!/usr/bin/env bash
# Collects every package of the pinned stack as a wheel into one folder, from which the image
# (or any machine without network) installs with `pip install --no-index --find-links DIR`.
#
#   tools/wheelhouse.sh [DIR]        default build/wheelhouse
#
# Runs after `make setup`: torch comes from pip's configured indexes, mmcv is the wheel the set-up
# built (pip's cache), packages published only as sources are built into wheels here. A second
# run copies nothing it already holds.
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=${1:-build/wheelhouse}
PY=.venv/bin/python
[[ -x $PY ]] || { echo "[wheelhouse] run 'make setup' first (it builds the mmcv wheel)" >&2; exit 1; }
mkdir -p "$DEST"
reqs=$(mktemp)
trap 'rm -f "$reqs"' EXIT
grep -Ev '^\s*(#|$)' deps/constraints.txt > "$reqs"
have=$(ls "$DEST" | wc -l)
start=$(date +%s)
# every pin already there as a wheel (names compared as pip normalises them): nothing to do
missing=$("$PY" - "$reqs" "$DEST" <<'PY'
import re, sys
from pathlib import Path
norm = lambda n: re.sub(r"[-_.]+", "_", n).lower()
have = {(norm(w.name.split("-")[0]), w.name.split("-")[1].split("+")[0]) for w in Path(sys.argv[2]).glob("*.whl")}
pins = [l.strip().split("==") for l in open(sys.argv[1]) if "==" in l]
print(sum((norm(n), v) not in have for n, v in pins))
PY
)
if [[ $missing == 0 ]]; then
  echo "[wheelhouse] all $(wc -l < "$reqs") pinned packages are in $DEST ($(du -sh "$DEST" | cut -f1)): reused"
  exit 0
fi
echo "[wheelhouse] $(wc -l < "$reqs") pinned packages -> $DEST ($have files there already)"
PIP_DISABLE_PIP_VERSION_CHECK=1 MMCV_WITH_OPS=1 FORCE_CUDA=0 MAX_JOBS=${MAX_JOBS:-2} \
  "$PY" -m pip wheel -q --no-deps --no-build-isolation -r "$reqs" -w "$DEST" \
  2> >(grep -v "^WARNING: Location '" >&2)
n=$(ls "$DEST"/*.whl | wc -l)
echo "[wheelhouse] $n wheels, $(du -sh "$DEST" | cut -f1), $(( $(date +%s) - start )) s"
[[ $n -ge $(wc -l < "$reqs") ]] || { echo "[wheelhouse] fewer wheels than pins" >&2; exit 1; }
