"""A model handed over that does not fit the task ends with 300004 (300005 for another object
type), naming the file and what does not fit, never with a raw exception."""
from __future__ import annotations

import shutil

import pytest
import torch
import yaml

from executor.runner import run
from ymir_tasks.common.safe_config import dump_config, read_config_data

from stages import KINDS, monitor, task_ws

CONFIG = {"det": "det_config.yaml", "seg": "seg_config.yaml", "det3d": "det3d_config.yaml"}


def _stage(ws):
    return next(p.parent for p in (ws / "in" / "models").rglob("ymir-model.yaml"))


def _meta(stage, **changes):
    path = stage / "ymir-model.yaml"
    meta = yaml.safe_load(path.read_text())
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    path.write_text(yaml.safe_dump(meta))
    return meta


def _num_classes(node, n):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "num_classes":
                node[k] = n
            else:
                _num_classes(v, n)
    elif isinstance(node, list):
        for v in node:
            _num_classes(v, n)


def _more_classes(stage, kind):
    meta = yaml.safe_load((stage / "ymir-model.yaml").read_text())
    names = meta["class_names"] + ["extra"]
    changes = {"class_names": names}
    if "model_classes" in meta:
        changes["model_classes"] = meta["model_classes"] + ["extra"]
    _meta(stage, **changes)
    return len(changes.get("model_classes", names))


def _broken(kind, stage, case):
    """Apply ``case`` to the stage; return what the message must name."""
    meta_file = stage / "ymir-model.yaml"
    if case == "no ymir-model.yaml":
        meta_file.unlink()
        return "ymir-model.yaml"
    if case == "malformed ymir-model.yaml":
        meta_file.write_text("kind: det\nclass_names: [a, b\n")
        return "ymir-model.yaml"
    if case == "ymir-model.yaml not a mapping":
        meta_file.write_text("- det\n- seg\n")
        return "ymir-model.yaml"
    if case == "no class_names":
        _meta(stage, class_names=None)
        return "class_names"
    if case == "config outside the stage":
        _meta(stage, config="../../config.yaml")
        return "config"
    if case == "weights file missing":
        (stage / "model.pth").unlink()
        return "model.pth"
    if case == "truncated weights":
        data = (stage / "model.pth").read_bytes()
        (stage / "model.pth").write_bytes(data[:len(data) // 2])
        return "model.pth"
    if case == "weights for another class count":
        n = _more_classes(stage, kind)
        cfg = read_config_data(str(stage / CONFIG[kind]))
        _num_classes(cfg["model"], n)
        dump_config(cfg, str(stage / CONFIG[kind]))
        return "another number of classes"
    if case == "classes differ from the config":
        _more_classes(stage, kind)
        return "num_classes"
    if case == "weights of another architecture":
        torch.save({"backbone.conv.weight": torch.zeros(3, 3)}, stage / "model.pth")
        return "another architecture"
    raise ValueError(case)


CASES = ["no ymir-model.yaml", "malformed ymir-model.yaml", "ymir-model.yaml not a mapping", "no class_names",
         "config outside the stage", "weights file missing", "truncated weights", "weights for another class count",
         "classes differ from the config", "weights of another architecture"]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("kind", KINDS)
def test_a_stage_that_does_not_fit_ends_with_300004_naming_what(stage_of, tmp_path, kind, case):
    ws = task_ws(stage_of(kind), tmp_path / "ws", kind, "infer", n=3)
    needle = _broken(kind, _stage(ws), case)
    assert run(str(ws / "in"), str(ws / "out")) == 1
    rec = monitor(ws)
    assert rec["state"] == 4 and rec["return_code"] == 300004, rec
    assert needle in rec["message"], rec["message"]
    assert not (ws / "out" / "infer-result.json").exists()


@pytest.mark.parametrize("kind,other", [("det", "seg"), ("seg", "det3d"), ("det3d", "det")])
def test_a_model_of_another_object_type_ends_with_300005(stage_of, tmp_path, kind, other):
    ws = task_ws(stage_of(kind), tmp_path / "ws", kind, "mine", n=3)
    models = ws / "in" / "models"
    shutil.rmtree(models)
    shutil.copytree(stage_of(other) / "out" / "models", models)
    assert run(str(ws / "in"), str(ws / "out")) == 1
    rec = monitor(ws)
    assert rec["return_code"] == 300005 and "ymir-model.yaml" in rec["message"]
    assert "object type" in rec["message"] and "this task is" in rec["message"]
