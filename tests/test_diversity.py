"""The diverse / balanced order of result.tsv: every prefix is a good batch."""
from __future__ import annotations

import numpy as np
import pytest

from executor.env import Env, OutputPaths
from ymir_tasks.common.diversity import diverse_order, write_ordered_mining_result


def _pool(seed=0, n=300, clusters=30, d=16):
    """Candidates in clusters of exact and near duplicates; scores shared within a cluster."""
    rng = np.random.RandomState(seed)
    centres = rng.randn(clusters, d)
    member = rng.randint(0, clusters, n)
    feats = centres[member] + (rng.rand(n, 1) < 0.5) * rng.randn(n, d) * 1e-3  # half of them exact copies
    scores = rng.rand(clusters)[member] + rng.rand(n) * 1e-6
    classes = rng.choice(3, n, p=[0.8, 0.15, 0.05])
    return scores, feats, classes, member


def test_without_options_the_order_is_by_score():
    scores, feats, classes, _ = _pool()
    order = diverse_order(scores, feats, classes, top=50, diversity=0.0, balance=False)
    assert list(order) == list(np.argsort(-scores, kind="stable"))


@pytest.mark.parametrize("seed", range(3))
def test_identical_candidates_are_never_adjacent_and_clusters_spread_in_the_top(seed):
    scores, feats, classes, member = _pool(seed)
    order = diverse_order(scores, feats, classes, top=60, diversity=1.0, balance=False)
    assert sorted(order) == list(range(len(scores)))  # a permutation: every candidate once
    head = order[:60]
    # by score alone the top 30 hold few clusters; here the first 30 lines are 30 different clusters
    assert len(set(member[head[:30]])) == 30
    by_score = np.argsort(-scores, kind="stable")[:30]
    assert len(set(member[by_score])) < 15
    for a, b in zip(head[:-1], head[1:]):
        assert not np.allclose(feats[a], feats[b])  # identical candidates are never adjacent in the top


@pytest.mark.parametrize("seed", range(3))
def test_with_balance_every_prefix_holds_the_classes_within_one_line(seed):
    scores, feats, classes, _ = _pool(seed)
    order = diverse_order(scores, feats, classes, top=45, diversity=0.5, balance=True)
    head = order[:45]
    present = sorted(set(classes))
    total = {c: int((classes == c).sum()) for c in present}
    for t in range(1, len(head) + 1):
        counts = {c: int((classes[head[:t]] == c).sum()) for c in present}
        # classes still holding candidates differ by at most one line in every prefix
        live = [counts[c] for c in present if counts[c] < total[c]]
        assert not live or max(counts.values()) - min(live) <= 1, (t, counts)


def test_unreadable_candidates_stay_last_and_scores_are_monotone(tmp_path):
    scores, feats, classes, _ = _pool(n=40)
    scores = scores.copy()
    scores[[3, 17]] = -np.inf
    env = Env(output=OutputPaths(root_dir=str(tmp_path), mining_result_file=str(tmp_path / "result.tsv")))
    paths = [f"/in/assets/{i:03d}.jpg" for i in range(40)]
    write_ordered_mining_result(env, paths, list(scores), feats, list(classes),
                                {"diversity": 1.0, "balance_classes": True, "diverse_top": 0})
    rows = [ln.split("\t") for ln in (tmp_path / "result.tsv").read_text().splitlines()]
    assert [r[0] for r in rows[-2:]] == [paths[3], paths[17]] or {r[0] for r in rows[-2:]} == {paths[3], paths[17]}
    values = [float(r[1]) for r in rows]
    assert all(a >= b for a, b in zip(values[:-1], values[1:]))  # monotone in file order
    side = (tmp_path / "mining-scores.tsv").read_text().splitlines()
    assert [s.split("\t")[0] for s in side] == [r[0] for r in rows]  # the miner's own scores, same order


def test_mining_order_is_the_file_order():
    from ymir_tasks.common.diversity import mining_order
    scores = [0.2, float("-inf"), 0.9, 0.2, 0.5]
    # by score: ties keep the candidate order, an unreadable candidate last (as write_mining_result sorts)
    assert mining_order(scores, None, None, {}) == [2, 4, 0, 3, 1]
    feats = np.eye(5, dtype=np.float32)
    got = mining_order(scores, feats, [0, 0, 0, 1, 1], {"balance_classes": True})
    assert sorted(got) == list(range(5)) and got[0] == 2 and got[1] in (3, 4)  # the other class second


@pytest.mark.parametrize("diversity", [0.0, 1.0])
def test_nothing_predicted_is_no_class_of_the_balance(diversity):
    # 60 candidates: 20 of class 0, 20 of class 1, 20 in which the model predicted nothing (-1)
    # and which the miner ranks last; balance alternates 0 and 1 and never gives -1 a turn
    rng = np.random.RandomState(0)
    classes = np.repeat([0, 1, -1], 20)
    scores = np.concatenate([rng.rand(40) + 1.0, rng.rand(20)])
    feats = rng.randn(60, 8)
    order = diverse_order(scores, feats, classes, top=50, diversity=diversity, balance=True)
    assert sorted(order) == list(range(60))
    assert set(classes[order[:40]]) == {0, 1}  # the predicted classes first, within one line of each other
    assert all(abs(int((classes[order[:t]] == 0).sum()) - int((classes[order[:t]] == 1).sum())) <= 1
               for t in range(1, 41))
    assert set(classes[order[40:]]) == {-1}
    # only candidates with nothing predicted: the order is still a permutation, by gain
    only = diverse_order(scores[40:], feats[40:], classes[40:], top=10, diversity=diversity, balance=True)
    assert sorted(only) == list(range(20)) and only[0] == int(np.argmax(scores[40:]))
