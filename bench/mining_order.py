"""Cost of the diverse / balanced order of result.tsv (ymir_tasks/common/diversity.py).

    .venv/bin/python bench/mining_order.py [--n 10000] [--dim 384] [--top 1000]
    .venv/bin/python bench/mining_order.py --memory [--n 100000]

Prints seconds for diversity alone, balance alone and both, over the first ``top`` lines of ``n``
candidates with ``dim``-dimensional features (RTMDet-tiny's pooled neck is 384).

``--memory``: what rank 0's end of a mining task costs in peak RSS beyond the plain by-score
``result.tsv``, for ``n`` candidates: the pool's pooled features (``FeatureStore``, 64-d after
the projection) filled, saved, loaded back, ordered and written with ``mining-scores.tsv``. Each
variant runs in a fresh process.
"""
import argparse
import resource
import subprocess
import sys
import tempfile
import time
import types

import numpy as np

from ymir_tasks.common.diversity import (FEATURE_DIM, FeatureStore, diverse_order, load_features,
                                         write_ordered_mining_result)


def end_of_mining(n: int, ordered: bool) -> float:
    """MiB of peak RSS the end of a mining task of ``n`` candidates adds (this process)."""
    rng = np.random.RandomState(0)
    paths = [f"/in/assets/pool/frame_{i:07d}.bin" for i in range(n)]
    scores = rng.rand(n)
    out = tempfile.mkdtemp()
    env = types.SimpleNamespace(output=types.SimpleNamespace(root_dir=out, mining_result_file=f"{out}/result.tsv"))
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    feats = classes = None
    if ordered:
        store = FeatureStore(n)
        for i in range(n):
            store.put(i, rng.randn(FEATURE_DIM).astype(np.float32), int(rng.randint(-1, 5)))
        store.save(out, 0)
        del store
        feats, classes = load_features(out, 1, n)
    p = {"diversity": 1.0 if ordered else 0.0, "balance_classes": ordered, "diverse_top": 1000}
    write_ordered_mining_result(env, paths, scores, feats, classes, p)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--top", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--memory", action="store_true")
    p.add_argument("--variant", choices=("plain", "ordered"), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.variant:
        print(f"{end_of_mining(a.n, a.variant == 'ordered'):.1f}")
        return
    if a.memory:
        mib = {v: float(subprocess.run([sys.executable, __file__, "--n", str(a.n), "--variant", v], check=True,
                                       capture_output=True, text=True).stdout.split()[-1])
               for v in ("plain", "ordered")}
        print(f"end of mining, n={a.n}: by score +{mib['plain']:.1f} MiB, diverse + balanced order "
              f"+{mib['ordered']:.1f} MiB (the order's own: {mib['ordered'] - mib['plain']:.1f} MiB, "
              f"{(mib['ordered'] - mib['plain']) * 2**20 / a.n:.0f} bytes a candidate)")
        return
    rng = np.random.RandomState(0)
    scores, feats = rng.rand(a.n), rng.randn(a.n, a.dim).astype(np.float32)
    classes = rng.randint(0, 5, a.n)
    for name, kw in (("by score", dict(diversity=0.0, balance=False)), ("diversity 1.0", dict(diversity=1.0, balance=False)),
                     ("balance", dict(diversity=0.0, balance=True)), ("both", dict(diversity=1.0, balance=True))):
        times = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            diverse_order(scores, feats, classes, top=a.top, **kw)
            times.append(time.perf_counter() - t)
        print(f"{name:14s} n={a.n} dim={a.dim} top={a.top}: median {np.median(times):.3f} s")


if __name__ == "__main__":
    main()
