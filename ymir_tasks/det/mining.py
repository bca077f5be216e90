"""Detection mining: random, entropy, cald, aldd, asm over the detector of the model stage (the
algorithms and their decisions: :mod:`..common.box_mining`)."""
from __future__ import annotations

from ..common import runtime
from ..common.box_mining import mine_candidates
from .config import CONFIG


@runtime.distributed_entry
def mine(ctx, launcher) -> None:
    mine_candidates(ctx, launcher, CONFIG)
