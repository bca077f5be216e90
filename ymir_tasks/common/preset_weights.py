"""The pretrained checkpoints of the presets: which file each real preset starts from, where the
image keeps them, and how they get there.

A preset names its OpenMMLab checkpoint in ``ymir_preset['checkpoint']`` (the download URL);
OpenMMLab ends each file name with the first 8 hex digits of the file's sha256
(``..._20220902_112414-78e30dcc.pth``), which is what a download is checked against. The image
build fetches them (``tools/fetch-weights.py``), checks them, and keeps each as a plain state dict
under its own name in ``YMIR_WEIGHTS_DIR`` (``/app/weights`` in the image): training loads them
with ``weights_only=True`` like any weights from outside. Nothing downloads at run time.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import urllib.request
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

from .options import CONFIGS_ROOT

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(os.environ.get("YMIR_WEIGHTS_DIR", CONFIGS_ROOT.parent / "weights"))
RECORD = "weights.json"  # what was installed: name, url, sha256 of the downloaded file, tensors
_DIGEST = re.compile(r"-([0-9a-f]{8})\.pth$")


def checkpoint_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def expected_prefix(name: str) -> str:
    m = _DIGEST.search(name)
    if not m:
        raise ValueError(f"{name}: an OpenMMLab checkpoint name ends with -<8 hex digits of its sha256>.pth")
    return m.group(1)


def installed(url: str, weights_dir: Optional[Path] = None) -> Optional[str]:
    """The path of a preset's checkpoint in the image, or None when the image was built without it."""
    path = (weights_dir or WEIGHTS_DIR) / checkpoint_name(url)
    return str(path) if path.is_file() else None


def preset_checkpoints(configs_root: Path = CONFIGS_ROOT) -> Iterator[Tuple[str, str, str]]:
    """(kind, preset, checkpoint URL) of every preset that names one."""
    from mmengine.config import Config

    for cfg_file in sorted(configs_root.glob("*/*.py")):
        url = dict(Config.fromfile(str(cfg_file)).get("ymir_preset", {})).get("checkpoint")
        if url:
            yield cfg_file.parent.name, cfg_file.stem, url


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fetch(url: str, source: Optional[Path], dest: Path) -> None:
    name = checkpoint_name(url)
    if source is not None:
        src = source / name
        if not src.is_file():
            raise FileNotFoundError(f"{name}: not in {source}")
        shutil.copyfile(src, dest)
        return
    with urllib.request.urlopen(url, timeout=120) as r, open(dest, "wb") as f:
        shutil.copyfileobj(r, f)


def install(url: str, weights_dir: Path, source: Optional[Path] = None) -> Dict[str, object]:
    """Fetch one checkpoint (from ``source`` when given, else its URL), check its sha256 against
    the name, keep its state dict under the same name. Raises ValueError on a wrong checksum."""
    import torch

    name = checkpoint_name(url)
    weights_dir.mkdir(parents=True, exist_ok=True)
    tmp = weights_dir / f".{name}.download"
    try:
        _fetch(url, source, tmp)
        digest = sha256_of(tmp)
        if not digest.startswith(expected_prefix(name)):
            raise ValueError(f"{name}: sha256 {digest[:8]}... does not match the {expected_prefix(name)} of its name "
                             "(a corrupt or substituted download)")
        # the published file, its checksum just verified, is read once here; what the image keeps is
        # its tensors only, which training reads with weights_only=True
        ckpt = torch.load(tmp, map_location="cpu", weights_only=False)
        state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
        if not isinstance(state, dict) or not state:
            raise ValueError(f"{name}: no state dict inside")
        plain = {k: v for k, v in state.items() if isinstance(v, torch.Tensor)}
        torch.save(plain, weights_dir / name)
    finally:
        if tmp.exists():
            tmp.unlink()
    return {"name": name, "url": url, "sha256": digest, "tensors": len(plain)}


def install_all(weights_dir: Path, source: Optional[Path] = None) -> List[Dict[str, object]]:
    rows = []
    for kind, preset, url in preset_checkpoints():
        row = dict(install(url, weights_dir, source), kind=kind, preset=preset)
        log.info("%s/%s: %s (%d tensors, sha256 %s)", kind, preset, row["name"], row["tensors"], row["sha256"][:12])
        rows.append(row)
    (weights_dir / RECORD).write_text(json.dumps(rows, indent=1))
    return rows
