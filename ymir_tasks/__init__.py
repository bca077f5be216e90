"""Task kinds (det, seg, iseg, det3d). Importing this package registers each kind in
:mod:`executor.registry`; nothing here imports torch."""
from . import det, det3d, iseg, seg  # noqa: F401  (registration side effects)
