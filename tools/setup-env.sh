#!/usr/bin/env bash
# Creates .venv at the repository root and installs the whole stack into it.
# Idempotent: a stamp of the pins and of this script makes a second run a no-op
# (seconds). Every version comes from deps/constraints.txt.
#
# The image build runs this same script (one install path for the machine and the image):
#   VENV=/opt/venv PROJECT_INSTALL=regular  the venv's place, the package installed, not linked
#   WHEELHOUSE=/wheels                      offline, from a wheelhouse only (tools/wheelhouse.sh)
#   TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 FORCE_CUDA=1   the CUDA variant
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${VENV:-$ROOT/.venv}
PROJECT_INSTALL=${PROJECT_INSTALL:-editable}
FORCE_CUDA=${FORCE_CUDA:-0}
PY=${PYTHON:-python3}
if [[ -n ${WHEELHOUSE:-} ]]; then
  export PIP_NO_INDEX=1 PIP_FIND_LINKS=$WHEELHOUSE
fi
C=(-c "$ROOT/deps/constraints.txt")
STAMP=$VENV/.stack-stamp
want=$(cat deps/constraints.txt tools/setup-env.sh pyproject.toml | sha256sum | cut -d' ' -f1)

say() { echo "[setup] $*"; }

if [[ -f $STAMP && $(cat "$STAMP") == "$want" ]] \
   && "$VENV/bin/python" -c "import mmcv.ops, mmdet, mmseg, mmdet3d, cv2.ximgproc, executor" 2>/dev/null; then
  say "environment .venv is up to date"
  exit 0
fi

if [[ ! -x $VENV/bin/python ]]; then
  say "creating virtual environment $VENV"
  "$PY" -m venv "$VENV"
fi
export PIP_DISABLE_PIP_VERSION_CHECK=1
# pip's configured local indexes lack most projects; its "Location ... is ignored"
# warnings say nothing about this install, so they are filtered out.
pipi() { "$VENV/bin/python" -m pip install -q "$@" 2> >(grep -v "^WARNING: Location '" >&2); }
PIP=(pipi)

if [[ -n ${TORCH_INDEX_URL:-} ]]; then
  say "1/5 torch from $TORCH_INDEX_URL, numpy and build tools"
  "${PIP[@]}" "${C[@]}" --index-url "$TORCH_INDEX_URL" torch
else
  say "1/5 torch (CPU), numpy and build tools"
fi
"${PIP[@]}" "${C[@]}" torch numpy setuptools wheel ninja psutil

if ! "$VENV/bin/python" -c "import mmcv.ops" 2>/dev/null; then
  say "2/5 mmcv with its C++ ops: the FIRST build on a machine takes ~20-35 minutes on 2 cores;"
  say "    pip caches the built wheel, so later installs take seconds"
  MMCV_WITH_OPS=1 FORCE_CUDA=$FORCE_CUDA MAX_JOBS=${MAX_JOBS:-2} \
    "${PIP[@]}" "${C[@]}" --no-build-isolation mmcv
else
  say "2/5 mmcv with ops already installed"
fi

say "3/5 OpenMMLab packages and the rest of the stack"
"${PIP[@]}" "${C[@]}" mmengine mmdet mmsegmentation ftfy regex six terminaltables \
  pycocotools scikit-image scipy pandas matplotlib shapely numba scikit-learn plyfile \
  pyquaternion trimesh cachetools descartes fire tqdm parameterized \
  PyYAML easydict tensorboard protobuf pytest pytest-timeout pytest-xdist
# mmdet3d and its dataset SDKs declare heavy or conflicting deps (open3d, flake8,
# black, plotly): install them bare, their import-time needs are listed above.
"${PIP[@]}" "${C[@]}" --no-deps mmdet3d nuscenes-devkit lyft-dataset-sdk
# fast-slic (RSAL's fastest superpixels) is published as sources whose set-up imports numpy.
"${PIP[@]}" "${C[@]}" --no-build-isolation fast-slic
say "    (pip's notes that black, flake8, plotly, open3d or opencv-python are missing are expected)"

say "4/5 opencv: contrib build last so that cv2.ximgproc exists"
"$VENV/bin/python" -m pip uninstall -y -q opencv-python opencv-python-headless opencv-contrib-python-headless 2>/dev/null || true
"${PIP[@]}" "${C[@]}" --no-deps --force-reinstall opencv-contrib-python-headless

if [[ $PROJECT_INSTALL == editable ]]; then
  say "5/5 this package (editable)"
  "${PIP[@]}" --no-deps --no-build-isolation -e "$ROOT"
else
  say "5/5 this package"
  "${PIP[@]}" --no-deps --no-build-isolation "$ROOT"
fi

say "checking imports"
"$VENV/bin/python" - <<'PY'
import cv2, cv2.ximgproc, mmcv, mmcv.ops, mmengine, mmdet, mmseg, mmdet3d, torch, numpy
import pycocotools, skimage, yaml, easydict, tensorboard, executor
print(f"[setup] torch {torch.__version__}, numpy {numpy.__version__}, mmengine {mmengine.__version__}, "
      f"mmcv {mmcv.__version__}, mmdet {mmdet.__version__}, mmseg {mmseg.__version__}, "
      f"mmdet3d {mmdet3d.__version__}, opencv {cv2.__version__} (ximgproc ok)")
PY
echo "$want" > "$STAMP"
say "done"
