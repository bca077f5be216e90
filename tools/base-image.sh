#!/usr/bin/env bash
# The CPU variant's base image, made locally from Debian's packages (no registry needed), once:
#   tools/base-image.sh [NAME]        default localhost/ymir-base:bookworm
# A second run reuses the image. Needs podman and mmdebstrap (docs: README, "The image").
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:-${BASE_IMAGE:-localhost/ymir-base:bookworm}}
if podman image exists "$NAME"; then
  echo "[base] $NAME exists: reused"
  exit 0
fi
mkdir -p build
start=$(date +%s)
# python3 + venv for the venv; glib for OpenCV; CA certificates for anything that verifies TLS.
mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates,libglib2.0-0,libgomp1 \
  bookworm build/base-rootfs.tar
podman import build/base-rootfs.tar "$NAME" >/dev/null
rm -f build/base-rootfs.tar
echo "[base] $NAME built in $(( $(date +%s) - start )) s ($(podman image inspect "$NAME" --format '{{.Size}}' | \
  awk '{printf "%.0f MB", $1/1e6}'))"
