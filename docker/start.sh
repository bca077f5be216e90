#!/usr/bin/env bash
# /usr/bin/start.sh: the image's default command. The platform starts the
# container with no arguments and no environment, so everything the run needs
# is baked into the image; the verifier calls `bash /usr/bin/start.sh` itself.
# YMIR_IN / YMIR_OUT exist only for running this script outside a container.
set -euo pipefail
exec ymir-executor run --in "${YMIR_IN:-/in}" --out "${YMIR_OUT:-/out}"
