#!/usr/bin/env python3
"""Install the presets' pretrained checkpoints into a weights folder (the image build runs this).

    fetch-weights.py DEST              download each preset's checkpoint from its URL
    fetch-weights.py DEST --source DIR take them from DIR instead (air-gapped builds: the files
                                       downloaded elsewhere, under their own names)

Every file is checked against the sha256 prefix in its OpenMMLab name and kept as a plain state
dict under that name; DEST/weights.json records what was installed. Exit status 1 on a wrong
checksum or a missing file: an image never ships a checkpoint that was not verified.
"""
import argparse
import logging
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ymir_tasks.common.preset_weights import install_all  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dest", type=Path)
    p.add_argument("--source", type=Path, help="folder holding the checkpoint files (no download)")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="[weights] %(message)s")
    try:
        rows = install_all(args.dest, args.source)
    except (OSError, ValueError) as e:
        print(f"[weights] error: {e}", file=sys.stderr)
        return 1
    print(f"[weights] {len(rows)} checkpoint(s) installed in {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
