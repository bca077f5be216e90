"""`ymir-executor simulate` on a tiny pool: two rounds, the real train / mine code paths, killed
and resumed, with its curves, plot and table."""
from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from PIL import Image

from executor.simulate import aulc, rare_class, summary_table
from executor.workspace import make_workspace


def _cmd(ws, out):
    return [sys.executable, "-m", "executor", "simulate", "--kind", "seg", "--workspace", str(ws), "--out", str(out),
            "--strategy", "random", "--strategy", "RSAL:max_superpixel_per_image=32,diversity=1.0,balance_classes=true",
            "--seeds", "0", "--initial", "4", "--budget", "3", "--rounds", "2", "--iters", "6",
            "--train-set", "config_file=tiny", "--train-set", "samples_per_gpu=4", "--train-set", "workers_per_gpu=0",
            "--mine-set", "samples_per_gpu=4", "--mine-set", "workers_per_gpu=0"]


def test_the_loop_runs_resumes_after_a_kill_and_writes_its_reports(tmp_path):
    ws = tmp_path / "pool"
    make_workspace(str(ws), "seg", "train", num_train=16, num_val=6, profile="benchmark")
    out = tmp_path / "sim"
    # its own process group: the kill takes the loop and the run it started, as a crash of the job would
    proc = subprocess.Popen(_cmd(ws, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not (out / "random" / "seed0" / "round1" / "DONE.json").exists():
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / "start" / "seed0" / "DONE.json").exists()  # round 0 is shared by the strategies of a seed
    # a row another configuration left in results.jsonl is not reported: the steps answer
    with open(out / "results.jsonl", "a") as f:
        f.write(json.dumps({"kind": "seg", "strategy": "random", "seed": 0, "round": 0, "labelled": 4,
                            "metric": 0.999, "per_class": {}, "composition": {}, "cost": 4}) + "\n")
    r = subprocess.run(_cmd(ws, out), capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout[-3000:]
    rows = [json.loads(ln) for ln in (out / "results.jsonl").read_text().splitlines()]
    keys = [(x["strategy"], x["seed"], x["round"]) for x in rows]
    assert sorted(keys) == sorted({(s, 0, i) for s in ("random", "RSAL") for i in range(3)})  # each once, none stale
    for s in ("random", "RSAL"):
        got = sorted((x for x in rows if x["strategy"] == s), key=lambda x: x["round"])
        assert [x["labelled"] for x in got] == [4, 7, 10] and got[0]["metric"] != 0.999
        assert all(0 <= x["metric"] <= 1 and set(x["per_class"]) == {"disc", "square", "triangle"} for x in got)
    # the same start for every strategy of a seed; what each mined is what it trained on next
    mined = json.loads((out / "RSAL" / "seed0" / "round0" / "MINED.json").read_text())["picked"]
    train1 = (out / "RSAL" / "seed0" / "round1" / "train" / "in" / "train-index.tsv").read_text()
    assert len(mined) == 3 and all(p in train1 for p in mined)
    with open(out / "results.csv") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 6 and {"mIoU", "mIoU.triangle", "images.triangle"} <= set(table[0])
    png = Image.open(out / "curves.png")
    assert png.size[0] > 300 and len(set(png.convert("L").getdata())) > 10  # drawn, not blank
    summary = (out / "summary.md").read_text()
    assert "| random |" in summary and "| RSAL |" in summary and "gain r2" in summary
    assert r.stdout.count("[simulate]") <= 12  # quiet: a line per step, the runs' logs in files
    assert (out / "start" / "seed0" / "train.log").stat().st_size > 0  # round 0, shared by the strategies


def test_area_under_the_curve_and_gains_over_random():
    assert aulc([0.2, 0.4, 0.6]) == pytest.approx(0.4)
    rows = [{"strategy": s, "seed": k, "round": i, "metric": m, "labelled": 4 + 3 * i, "composition": {"ring": i}}
            for s, base in (("random", 0.1), ("RSAL", 0.2)) for k in (0, 1) for i, m in
            enumerate([base, base + 0.1, base + 0.2])]
    table = summary_table(rows, "mIoU", "ring")
    assert "| RSAL | 0.300 ± 0.000 | +0.100 ± 0.000 | +0.100 | +0.100 | +0.100 |" in table
    assert "| random | 0.200 ± 0.000 |  |" in table


@pytest.mark.parametrize("kind,profile,rare", [("det3d", "benchmark", "Cyclist"), ("det3d", "benchmark-b", "Pedestrian"),
                                               ("seg", "benchmark-b", "cross")])
def test_the_table_counts_the_profiles_rare_class(tmp_path, kind, profile, rare):
    """A 3D profile's rare class is not its last class: every workspace names it for the table."""
    make_workspace(str(tmp_path), kind, "train", num_train=4, num_val=2, profile=profile)
    assert json.loads((tmp_path / "workspace-summary.json").read_text())["rare_class"] == rare
    assert rare_class(tmp_path, ["Car", "Pedestrian", "Cyclist"]) == rare
    assert rare_class(tmp_path / "none", ["a", "b", "c"]) == "c" and rare_class(tmp_path / "none", ["a", "b"]) is None
