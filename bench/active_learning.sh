#!/usr/bin/env bash
# Does mining beat random? The active-learning loop (ymir-executor simulate) on a benchmark pool.
#   bench/active_learning.sh KIND [PROFILE] [OUT]     KIND: det | seg | iseg | det3d; PROFILE: benchmark | benchmark-b
#   env: SEEDS=0,1,2  ITERS=300 (per round)  STRATS_OVERRIDE="random RSAL" (a subset of the strategies)
# 480 pool images, 120 val; 12 labelled to start, 12 more per round, 3 rounds; 3 seeds; the tiny
# preset at 300 iterations per round for every strategy (equal compute). Resumable: rerun to go on.
set -euo pipefail
cd "$(dirname "$0")/.."
KIND=$1
PROFILE=${2:-benchmark}
OUT=${3:-build/al-$KIND-$PROFILE}
SEEDS=${SEEDS:-0,1,2}
PY=.venv/bin/python
POOL_SEED=$([[ $PROFILE == benchmark ]] && echo 0 || echo 7)
[[ -d $OUT/pool/in ]] || $PY -m executor make-workspace --kind "$KIND" --task train --profile "$PROFILE" \
  --seed "$POOL_SEED" --num-train 480 --num-val 120 "$OUT/pool"
case $KIND in
  det) STRATS=(random aldd entropy cald "asm:certain_only=true" "aldd+div:diversity=1.0,balance_classes=true"); BATCH=8 ;;
  seg) STRATS=(random RSAL RIPU "RSAL+div:diversity=1.0,balance_classes=true"
               "RIPU+div:mining_algorithm=RIPU,diversity=1.0,balance_classes=true"); BATCH=8 ;;
  iseg) STRATS=(random mask_entropy aldd "mask_entropy+div:diversity=1.0,balance_classes=true"); BATCH=8 ;;
  det3d) STRATS=(random active "active+cb:mining_score=active,class_balance=true"
                 "active+cb+div:mining_score=active,class_balance=true,diversity=1.0,balance_classes=true"); BATCH=4 ;;
esac
# STRATS_OVERRIDE="random RSAL ..." (space-separated) runs only those
[[ -n ${STRATS_OVERRIDE:-} ]] && read -ra STRATS <<< "$STRATS_OVERRIDE"
args=()
for s in "${STRATS[@]}"; do args+=(--strategy "$s"); done
$PY -m executor simulate --kind "$KIND" --workspace "$OUT/pool" --out "$OUT" "${args[@]}" --seeds "$SEEDS" \
  --initial 12 --budget 12 --rounds 3 --iters "${ITERS:-300}" \
  --train-set config_file=tiny --train-set samples_per_gpu=$BATCH --train-set workers_per_gpu=2 \
  --mine-set samples_per_gpu=$BATCH --mine-set workers_per_gpu=2
