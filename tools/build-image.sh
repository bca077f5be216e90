#!/usr/bin/env bash
# `make image`: the CPU variant of the image, built offline here, one tag per kind (and cpu-multi):
#   1. the local Debian base image (tools/base-image.sh; built once, reused)
#   2. the wheelhouse of the pinned stack (tools/wheelhouse.sh; only what is missing)
#   3. the presets' checkpoints from build/weights-source when it holds them (else none)
#   4. `podman build -f Dockerfile.cuda` with the CPU build arguments and --network none
# A second run reuses every layer whose inputs did not change. ENGINE=docker works too.
set -euo pipefail
cd "$(dirname "$0")/.."
ENGINE=${ENGINE:-podman}
BASE=${BASE_IMAGE:-localhost/ymir-base:bookworm}
REPO=${IMAGE_REPO:-localhost/ymir-executor}
# multi: the one image for every YMIR type (docker/multi/img-man); only its last layers differ
KINDS=${KINDS:-det seg det3d multi}
flags=()
# This machine refuses raising process limits and crun's cgroup handling: pass what podman needs
# instead of relying on /etc/containers/containers.conf.
[[ $ENGINE == podman ]] && flags=(--runtime runc --ulimit nofile=1024:1024 --ulimit nproc=1000:1000)

t0=$(date +%s)
step() { echo "[image] $*"; s=$(date +%s); }
done_step() { echo "[image]   ... $(( $(date +%s) - s )) s"; }

step "1/4 base image $BASE"
BASE_IMAGE=$BASE tools/base-image.sh "$BASE"
done_step
step "2/4 wheelhouse build/wheelhouse"
tools/wheelhouse.sh build/wheelhouse
done_step
step "3/4 pretrained checkpoints"
mkdir -p build/weights-source
if compgen -G "build/weights-source/*.pth" >/dev/null; then
  PRETRAINED=source
  echo "[image]   from build/weights-source (checked against their sha256)"
else
  PRETRAINED=none
  echo "[image]   build/weights-source is empty and this machine cannot download them: the image has none"
  echo "[image]   (put the presets' .pth files there, or build with PRETRAINED=download where there is network)"
fi
done_step
for kind in $KINDS; do
  step "4/4 $REPO:cpu-$kind"
  "$ENGINE" build "${flags[@]}" --network none -f Dockerfile.cuda \
    --build-arg KIND="$kind" --build-arg BUILD_BASE="$BASE" --build-arg RUNTIME_BASE="$BASE" \
    --build-arg WHEELHOUSE=/wheels --build-arg TORCH_INDEX_URL= --build-arg FORCE_CUDA=0 \
    --build-arg "APT_BUILD=python3 python3-venv" --build-arg PRETRAINED="$PRETRAINED" \
    -t "$REPO:cpu-$kind" . > "build/image-$kind.log" 2>&1 \
    || { tail -30 "build/image-$kind.log"; exit 1; }
  cached=$(grep -c "Using cache" "build/image-$kind.log" || true)
  echo "[image]   $cached cached step(s); log build/image-$kind.log"
  done_step
done
echo "[image] sizes:"
for kind in $KINDS; do
  "$ENGINE" image inspect "$REPO:cpu-$kind" --format "{{.Size}}" | awk -v t="$REPO:cpu-$kind" \
    '{printf "[image]   %s  %.2f GB\n", t, $1/1e9}'
done
echo "[image] done in $(( $(date +%s) - t0 )) s"
