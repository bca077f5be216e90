"""The multi-type image: docker/multi/img-man (a list manifest, a template folder per YMIR type)
and the dispatch by config.yaml's object_type under such a manifest. No training: the kinds'
entry points are stubbed."""
from __future__ import annotations

from pathlib import Path
from typing import List, Tuple

import pytest
import yaml

from conftest import REPO, write_config, write_env
from executor.cli import main
from executor.monitor import parse_monitor
from executor.registry import (IMAGE_CONFIG_DIR_NAMES, MULTI_IMAGE, YMIR_OBJECT_TYPES, all_kinds,
                               kind_for_object_type, multi_type_kinds)
from executor.report import RUN_SUMMARY
from executor.runner import run

IMG_MAN = REPO / "docker" / MULTI_IMAGE / "img-man"
MANIFEST = IMG_MAN / "manifest.yaml"
LISTED: List[int] = yaml.safe_load(MANIFEST.read_text())["object_type"]
# YMIR types the image does not list, and registered kinds of a type YMIR does not run (3D: 100)
OTHER = sorted(t for t in set(YMIR_OBJECT_TYPES) | {k.object_type for k in all_kinds()} if t not in LISTED)


def test_the_manifest_lists_exactly_the_ymir_types_of_the_registered_kinds():
    assert LISTED == sorted({k.object_type for k in all_kinds() if k.object_type in YMIR_OBJECT_TYPES})
    assert LISTED == [k.object_type for k in multi_type_kinds()]
    assert {2, 3} <= set(LISTED)
    assert sorted(p.name for p in IMG_MAN.iterdir() if p.is_dir()) == sorted(IMAGE_CONFIG_DIR_NAMES[t] for t in LISTED)


@pytest.mark.parametrize("object_type", LISTED)
def test_each_type_folder_holds_the_schema_templates(object_type):
    kind = kind_for_object_type(object_type)
    folder = IMG_MAN / IMAGE_CONFIG_DIR_NAMES[object_type]
    assert {"training", "mining", "infer"} <= set(kind.schemas)
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{t}-template.yaml" for t in kind.schemas)
    for task, schema in kind.schemas.items():
        assert (folder / f"{task}-template.yaml").read_text() == schema.template_text()


def test_a_kind_of_a_type_ymir_does_not_run_keeps_a_standalone_image():
    for kind in all_kinds():
        if kind.object_type in YMIR_OBJECT_TYPES:
            continue
        text = (REPO / "docker" / kind.name / "img-man" / "manifest.yaml").read_text()
        assert yaml.safe_load(text) == {"object_type": kind.object_type}  # one int, not in the multi list
        assert "standalone image for `docker run` / docker compose" in text


def test_check_fails_when_the_multi_folder_drifts(tmp_path, capsys):
    out = ["--out", str(tmp_path), "--kind", MULTI_IMAGE]  # --kind: README.md is left alone
    assert main(["templates", *out]) == 0
    assert main(["templates", "--check", *out]) == 0
    template = tmp_path / MULTI_IMAGE / "img-man" / IMAGE_CONFIG_DIR_NAMES[LISTED[0]] / "training-template.yaml"
    template.write_text(template.read_text() + "extra: 1\n")
    assert main(["templates", "--check", *out]) == 1
    template.unlink()
    assert main(["templates", "--check", *out]) == 1
    assert str(template) in capsys.readouterr().out


@pytest.fixture
def stubbed(monkeypatch) -> List[Tuple[str, str]]:
    """Every kind's entry point records (kind, task) instead of running."""
    monkeypatch.delenv("YMIR_EXECUTOR_KIND", raising=False)
    calls: List[Tuple[str, str]] = []
    for kind in all_kinds():
        monkeypatch.setattr(kind, "entrypoint",
                            lambda task, k=kind: lambda ctx: calls.append((k.name, ctx.task)))
    return calls


def _out_files(out_dir: Path) -> List[str]:
    """What a run left in /out besides its diagnostics (run-summary.json, the error in TensorBoard)."""
    files = sorted(p.relative_to(out_dir).as_posix() for p in out_dir.rglob("*") if p.is_file())
    return [f for f in files if f != RUN_SUMMARY and not (f.startswith("tensorboard/") and f.endswith(".error"))]


@pytest.mark.parametrize("object_type", [2, 3])
def test_config_object_type_picks_the_kind(io_dirs, stubbed, object_type):
    in_dir, out_dir = io_dirs
    write_env(in_dir, manifest_file=str(MANIFEST))
    write_config(in_dir, {"class_names": ["a"], "object_type": object_type})
    assert run(str(in_dir), str(out_dir)) == 0
    assert stubbed == [(kind_for_object_type(object_type).name, "training")]


@pytest.mark.parametrize("object_type", OTHER)
def test_a_type_the_manifest_does_not_list_is_refused(io_dirs, stubbed, capsys, object_type):
    in_dir, out_dir = io_dirs
    write_env(in_dir, manifest_file=str(MANIFEST))
    write_config(in_dir, {"class_names": ["a"], "object_type": object_type})
    assert run(str(in_dir), str(out_dir)) == 1
    rec = parse_monitor((out_dir / "monitor.txt").read_text())
    assert (rec["state"], rec["return_code"]) == (4, 300005)
    assert "config.yaml" in rec["message"] and "object_type" in rec["message"]
    line = next(ln for ln in capsys.readouterr().out.splitlines() if "300005" in ln)
    assert "config.yaml" in line and "'object_type'" in line and str(LISTED) in line
    assert stubbed == [] and _out_files(out_dir) == ["monitor.txt"]


def test_without_object_type_a_list_of_several_is_refused(io_dirs, stubbed):
    in_dir, out_dir = io_dirs
    write_env(in_dir, manifest_file=str(MANIFEST))
    write_config(in_dir, {"class_names": ["a"]})
    assert run(str(in_dir), str(out_dir)) == 1
    rec = parse_monitor((out_dir / "monitor.txt").read_text())
    assert rec["state"] == 4 and "config.yaml" in rec["message"] and "object_type" in rec["message"]
    assert stubbed == [] and _out_files(out_dir) == ["monitor.txt"]


def test_without_object_type_a_list_of_one_is_that_type(io_dirs, stubbed, tmp_path):
    in_dir, out_dir = io_dirs
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text("object_type: [3]\n")
    write_env(in_dir, manifest_file=str(manifest))
    write_config(in_dir, {"class_names": ["a"]})
    assert run(str(in_dir), str(out_dir)) == 0
    assert stubbed == [(kind_for_object_type(3).name, "training")]


def test_the_multi_image_without_its_manifest_still_knows_its_list(io_dirs, stubbed, monkeypatch):
    in_dir, out_dir = io_dirs
    monkeypatch.setenv("YMIR_EXECUTOR_KIND", MULTI_IMAGE)  # what Dockerfile.cuda bakes in for KIND=multi
    write_env(in_dir, manifest_file=str(in_dir / "no-manifest.yaml"))
    write_config(in_dir, {"class_names": ["a"], "object_type": 2})
    assert run(str(in_dir), str(out_dir)) == 0
    write_config(in_dir, {"class_names": ["a"], "object_type": OTHER[0]})
    assert run(str(in_dir), str(out_dir)) == 1
    assert parse_monitor((out_dir / "monitor.txt").read_text())["return_code"] == 300005


def test_a_single_type_manifest_works_as_before(io_dirs, stubbed, tmp_path):
    # config.yaml's object_type first, then the manifest's
    in_dir, out_dir = io_dirs
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text("object_type: 2\n")
    write_env(in_dir, manifest_file=str(manifest))
    write_config(in_dir, {"class_names": ["a"], "object_type": 3})
    assert run(str(in_dir), str(out_dir)) == 0
    write_config(in_dir, {"class_names": ["a"]})
    assert run(str(in_dir), str(out_dir)) == 0
    assert stubbed == [(kind_for_object_type(3).name, "training"), (kind_for_object_type(2).name, "training")]
