"""One broken candidate never kills a long run: unreadable candidates are skipped with a warning,
kept in the outputs (no predictions, the lowest mining score), counted in the log and in
monitor.txt; the task fails (300003) only beyond ``max_broken_ratio``. Repeated candidate rows
are used once. Errors raised in loader workers keep their code and message."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from executor.runner import run
from executor.verify import verify_output

from stages import KINDS, break_files, candidates, monitor, set_config, task_ws

N, BROKEN, REPEATS = 200, 10, 5
ALGORITHM = {"det": "aldd", "seg": "RSAL", "det3d": "qa"}


def _names(result_tsv):
    rows = [ln.split("\t") for ln in result_tsv.read_text().splitlines()]
    return [p for p, _ in rows], [float(s) for _, s in rows]


@pytest.mark.parametrize("kind", KINDS)
def test_200_candidates_10_broken_mining_and_inference_finish(stage_of, tmp_path, kind, capsys):
    ws = task_ws(stage_of(kind), tmp_path / "ws", kind, "mine", n=N, samples_per_gpu=8, workers_per_gpu=2)
    cands = candidates(ws)
    broken = break_files(ws, cands[3::N // BROKEN][:BROKEN], kind)
    assert len(broken) == BROKEN and len(set(broken.values())) >= 5  # broken in different ways
    # the same rows again at the end: each image is used once
    with open(ws / "in" / "candidate-index.tsv", "a") as f:
        f.write("".join(ln + "\n" for ln in (ws / "in" / "candidate-index.tsv").read_text().splitlines()[:REPEATS]))

    assert run(str(ws / "in"), str(ws / "out")) == 0
    log = capsys.readouterr().out
    assert verify_output(str(ws / "in"), str(ws / "out")) == []

    paths, scores = _names(ws / "out" / "result.tsv")
    assert len(paths) == N and set(paths) == set(cands)
    assert set(paths[-BROKEN:]) == set(broken)  # last, below every readable candidate
    assert max(scores[-BROKEN:]) < min(scores[:-BROKEN])
    doc = json.loads((ws / "out" / "infer-result.json").read_text())
    if kind == "seg":
        images = {i["file_name"]: i["id"] for i in doc["images"]}
        assert len(images) == N
        with_anns = {a["image_id"] for a in doc["annotations"]}
        assert not with_anns & {images[p.rsplit("/", 1)[1]] for p in broken}
    else:
        entries = doc["detection3d" if kind == "det3d" else "detection"]
        assert len(entries) == N and all(entries[p.rsplit("/", 1)[1]]["boxes"] == [] for p in broken)
    rec = monitor(ws)
    assert rec["state"] == 2 and rec["percent"] == 1.0
    details = "\n".join(rec["details"])
    assert details.count(f"{BROKEN} of {N} candidates unreadable") == 2  # mining, then inference
    for p in broken:
        assert p.rsplit("/", 1)[1] in details and p.rsplit("/", 1)[1] in log
    assert "repeated candidate row" in log


@pytest.mark.parametrize("kind", KINDS)
def test_more_broken_than_the_ratio_fails_with_300003_and_no_result(stage_of, tmp_path, kind):
    ws = task_ws(stage_of(kind), tmp_path / "ws", kind, "mine", n=20, max_broken_ratio=0.1)
    broken = break_files(ws, candidates(ws)[:3], kind)
    assert run(str(ws / "in"), str(ws / "out")) == 1
    rec = monitor(ws)
    assert rec["state"] == 4 and rec["return_code"] == 300003
    assert "3 of 20 candidates are unreadable" in rec["message"] and "max_broken_ratio" in rec["message"]
    assert list(broken)[0].rsplit("/", 1)[1] in rec["message"]
    assert not (ws / "out" / "result.tsv").exists() and not (ws / "out" / "infer-result.json").exists()
    assert not (ws / "out" / "mining-tmp").exists()  # the shards are closed and removed on failure too


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("task", ["mine", "infer"])
@pytest.mark.parametrize("kind", KINDS)
def test_with_no_broken_candidate_allowed_the_file_and_code_reach_monitor(stage_of, tmp_path, kind, task,
                                                                            workers):
    ws = task_ws(stage_of(kind), tmp_path / "ws", kind, task, n=6, max_broken_ratio=0.0, workers_per_gpu=workers)
    (path, _), = break_files(ws, candidates(ws)[2:3], kind).items()
    assert run(str(ws / "in"), str(ws / "out")) == 1
    rec = monitor(ws)
    assert rec["state"] == 4 and rec["return_code"] == 300003, rec
    assert path.rsplit("/", 1)[1] in rec["message"] and "Caught" not in rec["message"]
    assert not list((ws / "out").glob("*-tmp"))


def test_a_decompression_bomb_is_refused_from_its_header_with_bounded_memory(tmp_path):
    from stages import png_bomb

    (tmp_path / "bomb.png").write_bytes(png_bomb())
    code = textwrap.dedent(f"""
        import resource, time
        from executor.images import check_image, image_size, load_image
        from executor.errors import YmirError
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        t = time.time()
        for f in (load_image, check_image, image_size):
            try:
                f({str(tmp_path / "bomb.png")!r})
            except YmirError as e:
                assert e.code == 300003 and "too large to decode" in e.message, e
            else:
                raise SystemExit("decoded")
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before, time.time() - t)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    grown_kb, seconds = r.stdout.split()
    assert int(grown_kb) < 50_000 and float(seconds) < 1.0  # 900 MB if it were decoded


@pytest.mark.parametrize("workers", [0, 2])
def test_a_ymir_error_in_a_loader_worker_keeps_its_code_and_message(workers):
    from torch.utils.data import DataLoader

    from executor.errors import ErrorCode, YmirError

    class Data:
        def __len__(self):
            return 4

        def __getitem__(self, i):
            if i == 2:
                raise YmirError(ErrorCode.IMAGE_FORMAT, "cannot decode image data", file="/in/assets/x.jpg")
            return i

    with pytest.raises(YmirError) as err:
        list(DataLoader(Data(), batch_size=1, num_workers=workers))
    assert err.value.code == 300003
    assert err.value.one_line() == "[300003 image_format] /in/assets/x.jpg: cannot decode image data"


def test_another_error_in_a_loader_worker_is_named_by_its_own_message():
    from torch.utils.data import DataLoader

    from executor.runner import exception_line

    class Data:
        def __len__(self):
            return 2

        def __getitem__(self, i):
            raise ValueError("a bad value in sample %d" % i)

    with pytest.raises(ValueError) as err:
        list(DataLoader(Data(), batch_size=1, num_workers=1))
    assert exception_line(err.value) == "ValueError: a bad value in sample 0 (in a data-loading worker)"


def test_repeated_candidate_rows_give_one_line_each(stage_of, tmp_path):
    ws = task_ws(stage_of("det"), tmp_path / "ws", "det", "mine", n=6)
    set_config(ws, mining_algorithm="random")
    lines = (ws / "in" / "candidate-index.tsv").read_text().splitlines()
    (ws / "in" / "candidate-index.tsv").write_text("\n".join(lines[:3] + lines + lines[::2]) + "\n")
    assert run(str(ws / "in"), str(ws / "out")) == 0
    paths, _ = _names(ws / "out" / "result.tsv")
    assert sorted(paths) == sorted(lines)
    assert set(json.loads((ws / "out" / "infer-result.json").read_text())["detection"]) == \
        {p.rsplit("/", 1)[1] for p in lines}
    assert verify_output(str(ws / "in"), str(ws / "out")) == []
