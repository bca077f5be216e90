"""Cost of the diverse / balanced order of result.tsv (ymir_tasks/common/diversity.py).

    .venv/bin/python bench/mining_order.py [--n 10000] [--dim 384] [--top 1000]

Prints seconds for diversity alone, balance alone and both, over the first ``top`` lines of ``n``
candidates with ``dim``-dimensional features (RTMDet-tiny's pooled neck is 384).
"""
import argparse
import time

import numpy as np

from ymir_tasks.common.diversity import diverse_order


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=10000)
    p.add_argument("--dim", type=int, default=384)
    p.add_argument("--top", type=int, default=1000)
    p.add_argument("--repeat", type=int, default=3)
    a = p.parse_args()
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
