"""``ymir-executor report``: one self-contained page of a finished (or failed) /out."""
from __future__ import annotations

import base64
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest

import fake_kind
from executor.registry import all_kinds, register_kind, unregister_kind
from executor.report import CONTACT_SHEET, PREVIEW_DIR, RUN_SUMMARY, write_combined_report, write_report
from executor.results import write_model_stage
from executor.runner import run

from conftest import write_config, write_env


@pytest.fixture(autouse=True, scope="module")
def fake_registered():
    all_kinds()
    register_kind(fake_kind.KIND)
    yield
    unregister_kind("fake")


def _embedded_pictures(page: str):
    return [cv2.imdecode(np.frombuffer(base64.b64decode(d), np.uint8), cv2.IMREAD_COLOR)
            for d in re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page)]


def test_a_training_page_has_the_stages_times_and_attached_pictures(io_dirs, tmp_path):
    in_dir, out_dir = io_dirs
    write_env(in_dir)
    write_config(in_dir, {"class_names": ["a"], "object_type": 99})
    assert run(str(in_dir), str(out_dir)) == 0
    chart = tmp_path / "pr-curves.png"
    cv2.imwrite(str(chart), np.full((120, 200, 3), 60, np.uint8))
    table = tmp_path / "evaluation.json"
    table.write_text('{"mAP@0.5": 0.625, "AP50_by_class": {"a": 0.625}}')
    from executor.env import PathMap, load_env

    env = load_env(str(in_dir / "env.yaml"), PathMap(str(in_dir), str(out_dir)))
    write_model_stage(env, "best", [str(out_dir / "work" / "w.pth")], {"mAP": 0.625}, best_stage_name="best",
                      attachments={"best": [str(table), str(chart)]})
    page = open(write_report(str(out_dir)), encoding="utf-8").read()
    assert "finished" in page and "0.6250" in page and "AP50_by_class" in page and "w.pth" in page
    assert "training" in page and (out_dir / RUN_SUMMARY).is_file()  # the task's time
    pics = _embedded_pictures(page)
    assert len(pics) == 1 and pics[0].shape[:2] == (120, 200)
    assert not re.search(r'(src|href)="(?!data:)', page)  # nothing outside the page


def test_a_failed_run_shows_the_message_and_the_log_tail(io_dirs):
    in_dir, out_dir = io_dirs
    write_env(in_dir)
    write_config(in_dir, {"class_names": ["a"], "object_type": 99, "behaviour": "crash"})
    assert run(str(in_dir), str(out_dir)) == 1
    page = open(write_report(str(out_dir)), encoding="utf-8").read()
    assert "failed (160004)" in page and "RuntimeError: kaboom" in page and "loading batch 7" in page


def test_a_mining_page_shows_the_contact_sheet_previews_and_the_top_lines(tmp_path):
    out = tmp_path / "out"
    (out / PREVIEW_DIR).mkdir(parents=True)
    (out / "result.tsv").write_text("".join(f"/in/assets/{k}.jpg\t{1 - k / 100}\n" for k in range(50)))
    for name in ("01-0.png", "02-1.png", CONTACT_SHEET):
        cv2.imwrite(str(out / PREVIEW_DIR / name), np.full((64, 64, 3), 200, np.uint8))
    page = open(write_combined_report([("det · mine", str(out)), ("gone", str(tmp_path / "none"))],
                                      str(tmp_path / "r.html"), "demo"), encoding="utf-8").read()
    assert "50 candidates ranked" in page and "/in/assets/29.jpg" in page and "/in/assets/30.jpg" not in page
    assert len(_embedded_pictures(page)) == 3 and "det · mine" in page and "gone" not in page


def test_the_command_names_a_missing_folder(tmp_path):
    r = subprocess.run([sys.executable, "-m", "executor", "report", str(tmp_path / "nope")], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 1 and "nope: no such folder" in r.stderr
