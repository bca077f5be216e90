"""``ymir-executor simulate``: the platform's active-learning loop on a labelled workspace, with the
labels held back instead of a human.

For each strategy and seed: start from ``initial`` labelled images (the same for every strategy
of a seed), then per round train on the labelled set with the ``train`` code path the image runs,
mine the rest of the pool with the ``mine`` code path (the real ``/in`` → ``/out`` hand-over of
the model, as the platform does it), reveal the labels of the first ``budget`` lines of
``result.tsv``, repeat. ``random`` draws with the seed. Training compute is equal across
strategies (a fixed number of iterations per round, see :mod:`ymir_tasks.common.simulation`).

Everything lands under the output folder: one folder per (strategy, seed, round) with the run's
workspace and log, ``results.jsonl`` (one row per trained round), ``results.csv``,
``curves.png`` (mean and spread over seeds, random drawn the same way) and ``summary.md`` (area
under the learning curve and each strategy's gain over random per round). A killed loop
continues where it stopped: finished steps are kept (a ``DONE.json`` each), an interrupted
training resumes from its last checkpoint, an interrupted mining starts again.
"""
from __future__ import annotations

import csv
import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml

from .env import PathMap, load_env
from .index import read_index
from .registry import TaskKind, get_kind
from .workspace import write_env_config

RANDOM = "random"


@dataclass
class Strategy:
    """A miner with its hyper-parameters (``RSAL``, ``aldd:class_balance_top=true``), or random."""

    name: str
    overrides: Dict[str, Any] = field(default_factory=dict)

    @staticmethod
    def parse(text: str, kind_module) -> "Strategy":
        name, _, rest = text.partition(":")
        overrides: Dict[str, Any] = dict(getattr(kind_module, "STRATEGY_OVERRIDES", {}).get(name, {}))
        if name != RANDOM and not overrides and "mining_algorithm" not in rest:
            base = name.split("+")[0]
            overrides["mining_algorithm"] = base
        for item in filter(None, rest.split(",")):
            k, _, v = item.partition("=")
            overrides[k.strip()] = yaml.safe_load(v) if v else ""
        return Strategy(name, overrides)


@dataclass
class Plan:
    kind: TaskKind
    source: Path  # a labelled training workspace (its in/ has train-index, val-index, annotations)
    out: Path
    strategies: List[Strategy]
    seeds: List[int]
    initial: int
    budget: int
    rounds: int
    iters: int
    train: Dict[str, Any] = field(default_factory=dict)
    mine: Dict[str, Any] = field(default_factory=dict)


def _say(text: str) -> None:
    print(f"[simulate] {text}", flush=True)


class Pool:
    """The source workspace's training entries (the pool) and its fixed validation set."""

    def __init__(self, plan: Plan) -> None:
        self.pm = PathMap(str(plan.source / "in"), str(plan.source / "out"))
        env = load_env(str(plan.source / "in" / "env.yaml"), self.pm)
        self.env = env
        self.entries = read_index(env.input.training_index_file, path_map=self.pm)
        raw_lines = [ln for ln in Path(env.input.training_index_file).read_text().splitlines() if ln.strip()]
        self.lines = {e.raw_image: ln for e, ln in zip(self.entries, raw_lines)}
        self.val_index = Path(env.input.val_index_file)
        with open(env.input.config_file, encoding="utf-8") as f:
            self.config = yaml.safe_load(f)
        self.class_names = list(self.config["class_names"])
        sim = importlib.import_module(plan.kind.simulation)
        self.sim = sim
        classes = sim.image_classes(self.entries, self.class_names)
        self.classes = {e.raw_image: c for e, c in zip(self.entries, classes)}
        self.images = [e.raw_image for e in self.entries]

    def cost(self, entries, predictions=None) -> int:
        """Labelling cost of revealing ``entries``: the kind's (boxes drawn or fixed), else images."""
        fn = getattr(self.sim, "labelling_cost", None)
        return fn(entries, self.class_names, predictions) if fn else len(entries)

    def composition(self, labelled: Sequence[str]) -> Dict[str, int]:
        counts = {n: 0 for n in self.class_names}
        for img in labelled:
            for c in self.classes[img]:
                counts[self.class_names[c]] += 1
        return counts


def _drawn(items: Sequence[str], salt: str, n: int) -> List[str]:
    """``n`` items drawn by hashing each with ``salt``: reproducible, and independent of any
    generator's random stream (a numpy draw with the pool generator's seed would repeat its
    choices, e.g. pick exactly the images it made rare)."""
    return sorted(items, key=lambda p: hashlib.sha256(f"{salt}:{p}".encode()).hexdigest())[:n]


def _initial(pool: Pool, seed: int, n: int) -> List[str]:
    picked = set(_drawn(pool.images, f"initial:{seed}", n))
    return [p for p in pool.images if p in picked]


def _random_pick(rest: Sequence[str], seed: int, round_: int, n: int) -> List[str]:
    return _drawn(rest, f"random:{seed}:{round_}", n)


def _link_inputs(pool: Pool, in_dir: Path) -> None:
    """The source's assets and annotations, linked (read-only, never copied)."""
    in_dir.mkdir(parents=True, exist_ok=True)
    for name in ("assets", "annotations"):
        src = Path(pool.pm.in_dir) / name
        if src.exists() and not (in_dir / name).exists():
            os.symlink(src.resolve(), in_dir / name)
    (in_dir / "models").mkdir(exist_ok=True)


def _run(ws: Path, log: Path) -> int:
    with open(log, "a", encoding="utf-8") as f:
        return subprocess.run([sys.executable, "-m", "executor", "run", "--in", str(ws / "in"), "--out",
                               str(ws / "out")], stdout=f, stderr=subprocess.STDOUT).returncode


def _train(plan: Plan, pool: Pool, labelled: Sequence[str], step: Path) -> Dict[str, Any]:
    cfg = {k: v for k, v in pool.config.items() if k not in ("pretrained_model_params", "task_id")}
    cfg.update(plan.train)
    cfg.update(pool.sim.equal_compute(plan.iters, len(labelled), cfg))
    index = "".join(pool.lines[i] + "\n" for i in labelled)
    # what this step trains on: a step left by another configuration is started again, not reused
    fingerprint = hashlib.sha256((index + json.dumps(cfg, sort_keys=True, default=str)).encode()).hexdigest()
    stamp = step / "INPUTS.sha256"
    if stamp.is_file() and stamp.read_text() != fingerprint:
        shutil.rmtree(step)
    step.mkdir(parents=True, exist_ok=True)
    stamp.write_text(fingerprint)
    done = step / "DONE.json"
    if done.is_file():
        return dict(json.loads(done.read_text()), reused=True)
    ws = step / "train"
    in_dir = ws / "in"
    _link_inputs(pool, in_dir)
    (in_dir / "train-index.tsv").write_text(index)
    shutil.copyfile(pool.val_index, in_dir / "val-index.tsv")
    write_env_config(in_dir, plan.kind, "train", pool.class_names, "1.1.0", cfg)
    (ws / "out").mkdir(exist_ok=True)  # kept across a kill: the executor resumes from its checkpoint
    t = time.time()
    rc = _run(ws, step / "train.log")
    if rc != 0:
        raise RuntimeError(f"training failed (exit {rc}): see {step / 'train.log'}")
    result = yaml.safe_load((ws / "out" / "models" / "result.yaml").read_text())
    best = result["model_stages"][result["best_stage_name"]]
    evaluation = json.loads((ws / "out" / "models" / "attachments" / result["best_stage_name"] /
                             "evaluation.json").read_text())
    # the loop's metric: the stage's, or one the kind reads from the evaluation attachment
    row = {"metric": float(evaluation[pool.sim.METRIC] if pool.sim.METRIC in evaluation else best[pool.sim.METRIC]),
           "per_class": pool.sim.class_metrics(evaluation, pool.class_names),
           "train_seconds": round(time.time() - t, 1)}
    done.write_text(json.dumps(row))
    return row


def _mine(plan: Plan, pool: Pool, strategy: Strategy, seed: int, round_: int, labelled: Sequence[str],
          step: Path, trained: Path) -> Tuple[List[str], float, int]:
    """(the images revealed next, seconds, the labelling cost of revealing them)."""
    done = step / "MINED.json"
    # what this mining depends on: the model's training inputs, the strategy, the labelled set
    fingerprint = hashlib.sha256(((trained / "INPUTS.sha256").read_text() + json.dumps(strategy.overrides,
                                  sort_keys=True, default=str) + json.dumps(plan.mine, sort_keys=True, default=str) +
                                  "".join(sorted(labelled))).encode()).hexdigest()
    if done.is_file():
        d = json.loads(done.read_text())
        if d.get("inputs") == fingerprint:
            return d["picked"], d["seconds"], d.get("cost", len(d["picked"]))
    rest = [i for i in pool.images if i not in set(labelled)]
    n = min(plan.budget, len(rest))
    t = time.time()
    predictions = None
    pre_annotate = bool(strategy.overrides.get("certain_only"))  # mining with prediction (pre-annotations)
    if strategy.name == RANDOM:
        picked = _random_pick(rest, seed, round_, n)
    else:
        ws = step / "mine"
        if ws.exists():
            shutil.rmtree(ws)  # an interrupted mining starts again
        in_dir = ws / "in"
        _link_inputs(pool, in_dir)
        (in_dir / "candidate-index.tsv").write_text("".join(i + "\n" for i in rest))
        from .demo import _handoff_model
        cfg = {"class_names": pool.class_names, "seed": seed}
        cfg.update(plan.mine)
        cfg.update(strategy.overrides)
        write_env_config(in_dir, plan.kind, "mine", pool.class_names, "1.1.0", cfg)
        env = yaml.safe_load((in_dir / "env.yaml").read_text())
        env["run_infer"] = pre_annotate
        (in_dir / "env.yaml").write_text(yaml.safe_dump(env, sort_keys=False))
        config = yaml.safe_load((in_dir / "config.yaml").read_text())
        config["run_infer"] = pre_annotate
        (in_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
        (ws / "out").mkdir()
        _handoff_model(trained / "train" / "out", ws)
        rc = _run(ws, step / "mine.log")
        if rc != 0:
            raise RuntimeError(f"mining failed (exit {rc}): see {step / 'mine.log'}")
        lines = (ws / "out" / "result.tsv").read_text().splitlines()
        picked = [ln.split("\t")[0] for ln in lines[:n]]
        if pre_annotate:
            # the kind reads its pre-annotations out of the infer-result of mining with prediction
            predictions = pool.sim.pre_annotations(json.loads((ws / "out" / "infer-result.json").read_text()))
    seconds = round(time.time() - t, 1)
    cost = pool.cost([e for e in pool.entries if e.raw_image in set(picked)], predictions)
    done.write_text(json.dumps({"picked": picked, "seconds": seconds, "cost": cost, "inputs": fingerprint}))
    return picked, seconds, cost


def simulate(plan: Plan) -> List[Dict[str, Any]]:
    plan.out.mkdir(parents=True, exist_ok=True)
    pool = Pool(plan)
    _say(f"{plan.kind.name}: pool {len(pool.images)} images, val {sum(1 for _ in open(pool.val_index))}, "
         f"strategies {', '.join(s.name for s in plan.strategies)}, seeds {plan.seeds}, start {plan.initial} "
         f"+ {plan.budget} per round x {plan.rounds}, {plan.iters} iterations per round")
    # the rows of this plan, rebuilt from the steps (a finished step answers from its DONE.json): a
    # row left by another configuration (other iterations, another start set) is never reported
    rows_file = plan.out / "results.jsonl"
    rows_file.write_text("")
    rows: Dict[Tuple[str, int, int], Dict[str, Any]] = {}
    for seed in plan.seeds:
        for strategy in plan.strategies:
            labelled = _initial(pool, seed, plan.initial)
            cost = pool.cost([e for e in pool.entries if e.raw_image in set(labelled)])
            for round_ in range(plan.rounds + 1):
                step = plan.out / strategy.name / f"seed{seed}" / f"round{round_}"
                step.mkdir(parents=True, exist_ok=True)
                # round 0 trains on the seed's start set, the same for every strategy (training is
                # deterministic): trained once per seed and shared
                train_step = plan.out / "start" / f"seed{seed}" if round_ == 0 else step
                key = (strategy.name, seed, round_)
                if key not in rows:
                    t = time.time()
                    got = _train(plan, pool, labelled, train_step)
                    row = {"kind": plan.kind.name, "strategy": strategy.name, "seed": seed, "round": round_,
                           "labelled": len(labelled), "metric": got["metric"], "per_class": got["per_class"],
                           "composition": pool.composition(labelled), "cost": cost,
                           "train_seconds": got["train_seconds"]}
                    rows[key] = row
                    with open(rows_file, "a", encoding="utf-8") as f:
                        f.write(json.dumps(row) + "\n")
                    _say(f"{strategy.name} seed {seed} round {round_}/{plan.rounds}: {len(labelled)} labelled, "
                         f"{pool.sim.METRIC} {got['metric']:.3f} " +
                         ("(done before)" if got.get("reused") else f"({time.time() - t:.0f} s)"))
                if round_ < plan.rounds:
                    picked, secs, spent = _mine(plan, pool, strategy, seed, round_, labelled, step, train_step)
                    labelled = list(labelled) + [p for p in picked if p not in set(labelled)]
                    cost += spent
    ordered = [rows[k] for k in sorted(rows)]
    write_reports(plan, pool, ordered)
    return ordered


# ---------------------------------------------------------------- reports

def aulc(values: Sequence[float]) -> float:
    """Area under a learning curve over equally spaced rounds, normalised to [0, 1] (trapezoids)."""
    v = list(values)
    if len(v) == 1:
        return float(v[0])
    return float(sum((a + b) / 2 for a, b in zip(v[:-1], v[1:])) / (len(v) - 1))


def curves(rows: Sequence[Dict[str, Any]]) -> Dict[str, Dict[int, List[float]]]:
    """strategy -> round -> metric per seed (seed order)."""
    out: Dict[str, Dict[int, List[float]]] = {}
    for r in sorted(rows, key=lambda r: (r["strategy"], r["round"], r["seed"])):
        out.setdefault(r["strategy"], {}).setdefault(r["round"], []).append(r["metric"])
    return out


def rare_class(workspace: Path, names: Sequence[str]) -> Optional[str]:
    """The pool's rare class where its workspace names it (benchmark profiles), else the last of
    three or more."""
    summary_file = workspace / "workspace-summary.json"
    rare = json.loads(summary_file.read_text()).get("rare_class") if summary_file.is_file() else None
    return rare or (names[-1] if len(names) > 2 else None)


def summary_table(rows: Sequence[Dict[str, Any]], metric: str, rare: Optional[str] = None) -> str:
    by = curves(rows)
    seeds = sorted({r["seed"] for r in rows})
    per_seed_aulc = {s: [aulc([next(r["metric"] for r in rows if r["strategy"] == s and r["seed"] == k and
                                    r["round"] == i) for i in sorted(by[s])]) for k in seeds
                         if all(any(r["strategy"] == s and r["seed"] == k and r["round"] == i for r in rows)
                                for i in sorted(by[s]))] for s in by}
    rounds = sorted({r["round"] for r in rows})
    head = f"| strategy | AULC ({metric}) mean ± std | ΔAULC vs random, paired by seed | " + \
        " | ".join(f"gain r{i}" for i in rounds) + (f" | {rare} images labelled (last round) |" if rare else " |")
    lines = [head, "|" + " --- |" * (3 + len(rounds) + (1 if rare else 0))]
    rand = by.get(RANDOM, {})
    for s in sorted(by, key=lambda s: (s != RANDOM, s)):
        a = per_seed_aulc[s]
        gains = []
        for i in rounds:
            if s == RANDOM or i not in rand or i not in by[s]:
                gains.append("")
            else:
                gains.append(f"{np.mean(by[s][i]) - np.mean(rand[i]):+.3f}")
        cell = f"{np.mean(a):.3f} ± {np.std(a):.3f}" if a else ""
        # the same seed shares round 0 and the pool's draw: the per-seed difference is the fair spread
        r_a, paired = per_seed_aulc.get(RANDOM, []), ""
        if s != RANDOM and a and len(a) == len(r_a):
            d = np.array(a) - np.array(r_a)
            paired = f"{d.mean():+.3f} ± {d.std():.3f}"
        cell += f" | {paired}"
        extra = ""
        if rare:
            last = [r for r in rows if r["strategy"] == s and r["round"] == max(rounds)]
            extra = f" {np.mean([r['composition'].get(rare, 0) for r in last]):.1f} |" if last else " |"
        lines.append(f"| {s} | {cell} | " + " | ".join(gains) + " |" + extra)
    if all("cost" in r for r in rows):
        last = max(rounds)
        lines.append("")
        lines.append("labelling cost at the last round: " + ", ".join(
            f"{s} {np.mean([r['cost'] for r in rows if r['strategy'] == s and r['round'] == last]):.0f}"
            for s in sorted(by, key=lambda s: (s != RANDOM, s))))
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[Dict[str, Any]], metric: str, path: Path, title: str, x_key: str = "labelled",
         x_label: str = "labelled images") -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for s, per_round in sorted(curves(rows).items(), key=lambda kv: (kv[0] != RANDOM, kv[0])):
        rounds = sorted(per_round)
        x = [np.mean([r.get(x_key, r["labelled"]) for r in rows if r["strategy"] == s and r["round"] == i])
             for i in rounds]
        mean = np.array([np.mean(per_round[i]) for i in rounds])
        lo = np.array([np.min(per_round[i]) for i in rounds])
        hi = np.array([np.max(per_round[i]) for i in rounds])
        style = dict(color="black", linestyle="--") if s == RANDOM else {}
        line, = ax.plot(x, mean, marker="o", label=f"{s} (n={len(per_round[rounds[0]])})", **style)
        ax.fill_between(x, lo, hi, alpha=0.15, color=line.get_color())
    ax.set_xlabel(x_label)
    ax.set_ylabel(f"val {metric}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_reports(plan: Plan, pool: Pool, rows: Sequence[Dict[str, Any]]) -> None:
    if not rows:
        return
    names = pool.class_names
    with open(plan.out / "results.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["kind", "strategy", "seed", "round", "labelled", pool.sim.METRIC] +
                   [f"{pool.sim.METRIC}.{n}" for n in names] + [f"images.{n}" for n in names] + ["train_seconds"])
        for r in rows:
            w.writerow([r["kind"], r["strategy"], r["seed"], r["round"], r["labelled"], round(r["metric"], 5)] +
                       [round(r["per_class"].get(n, 0.0), 5) for n in names] +
                       [r["composition"].get(n, 0) for n in names] + [r["train_seconds"]])
    (plan.out / "results.json").write_text(json.dumps(list(rows), indent=1))
    title = f"{plan.kind.name}: {plan.initial} + {plan.budget}/round, {len(plan.seeds)} seed(s)"
    plot(rows, pool.sim.METRIC, plan.out / "curves.png", title)
    if getattr(pool.sim, "labelling_cost", None) and all("cost" in r for r in rows):
        plot(rows, pool.sim.METRIC, plan.out / "curves-cost.png", title, "cost", "labelling cost (boxes drawn or fixed)")
    rare = rare_class(plan.source, names)
    table = summary_table(rows, pool.sim.METRIC, rare)
    (plan.out / "summary.md").write_text(f"# {title}\n\n{table}")
    _say(f"wrote {plan.out / 'results.csv'}, {plan.out / 'curves.png'}, {plan.out / 'summary.md'}")
    print(table, end="")


def main(args) -> int:
    kind = get_kind(args.kind)
    if not kind.simulation:
        raise SystemExit(f"kind {kind.name} cannot be simulated")
    sim = importlib.import_module(kind.simulation)
    texts = args.strategy or list(sim.STRATEGIES)
    from .cli import _parse_set
    plan = Plan(kind=kind, source=Path(args.workspace), out=Path(args.out),
                strategies=[Strategy.parse(t, sim) for t in texts],
                seeds=[int(s) for s in str(args.seeds).split(",") if s.strip()], initial=args.initial,
                budget=args.budget, rounds=args.rounds, iters=args.iters, train=_parse_set(args.train_set),
                mine=_parse_set(args.mine_set))
    simulate(plan)
    return 0

