"""No code runs from a model: a stage's config is data, and every way a config from /in could run
code is refused with 300004 (or, for Python configs, runs only with ``trust_model_code``)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from executor.errors import YmirError
from executor.runner import run
from executor.verify import verify_output
from ymir_tasks.common.safe_config import check_config_data, dump_config, load_config, read_config_data

from stages import KINDS, monitor, set_config, task_ws

CONFIG_NAME = {"det": "det_config.yaml", "seg": "seg_config.yaml", "det3d": "det3d_config.yaml"}
SCOPE = {"det": "mmdet", "seg": "mmseg", "det3d": "mmdet3d"}


def _marker(tmp_path: Path) -> Path:
    return tmp_path / "PWNED"


def _evil_yaml_documents(marker: Path):
    """(name, text of a data config) that would run ``touch marker`` if loaded or built naively."""
    cmd = f"touch {marker}"
    return [
        ("yaml python/object/apply", f"model: !!python/object/apply:os.system [{json.dumps(cmd)}]\n"),
        ("yaml python/object/new", f"model: !!python/object/new:subprocess.Popen [[sh, -c, {json.dumps(cmd)}]]\n"),
        ("yaml python/name", "model: {type: RTMDet, hook: !!python/name:os.system }\n"),
        ("yaml python/module", "model: !!python/module:os\n"),
        ("dotted type in the model", yaml.safe_dump({"model": {"type": "subprocess.getoutput", "cmd": cmd}})),
        ("dotted type nested", yaml.safe_dump({"model": {"type": "RTMDet", "backbone": {
            "type": "os.system", "command": cmd}}})),
        ("scope of an unknown package", yaml.safe_dump({"model": {"type": "evilpkg.Anything"}})),
        ("type that is not a string", yaml.safe_dump({"model": {"type": ["os.system"]}})),
        ("nms type evaluated by mmcv", yaml.safe_dump({"model": {"type": "RTMDet", "test_cfg": {"nms": {
            "type": f"__import__('os').system('{cmd}') or nms", "iou_threshold": 0.5}}}})),
        ("warp_mode evaluated by mmdet", yaml.safe_dump({"model": {"type": "RTMDet", "cmc": {
            "type": "CameraMotionCompensation", "warp_mode": f"__import__('os').system('{cmd}')"}}})),
        ("_base_ reading another file", yaml.safe_dump({"_base_": [str(marker.parent / "evil.py")],
                                                        "model": {"type": "RTMDet"}})),
        ("custom_imports", yaml.safe_dump({"custom_imports": {"imports": ["os"], "allow_failed_imports": False},
                                           "model": {"type": "RTMDet"}})),
    ]


@pytest.mark.parametrize("index", range(12))
def test_data_configs_that_try_to_run_code_are_refused(tmp_path, index):
    marker = _marker(tmp_path)
    (tmp_path / "evil.py").write_text(f"_ = __import__('os').system('touch {marker}')\nmodel = dict(type='RTMDet')\n")
    name, text = _evil_yaml_documents(marker)[index]
    path = tmp_path / "det_config.yaml"
    path.write_text(text)
    with pytest.raises(YmirError) as err:
        cfg = load_config(str(path), trust_code=False, scope="mmdet")
        # whatever load_config accepted is what inference builds: build it to be sure
        from mmengine.registry import MODELS
        MODELS.build(cfg.model)
    assert err.value.code == 300004, name
    assert str(path) in err.value.one_line(), name
    assert not marker.exists(), f"{name}: code ran"


def test_a_json_config_with_a_dotted_type_is_refused(tmp_path):
    marker = _marker(tmp_path)
    path = tmp_path / "seg_config.json"
    path.write_text(json.dumps({"model": {"type": "EncoderDecoder", "decode_head": {
        "type": "subprocess.getoutput", "cmd": f"touch {marker}"}}}))
    with pytest.raises(YmirError) as err:
        load_config(str(path), trust_code=False, scope="mmseg")
    assert err.value.code == 300004 and err.value.field == "model.decode_head.type"
    assert not marker.exists()


def test_python_configs_run_only_when_trusted(tmp_path):
    marker = _marker(tmp_path)
    path = tmp_path / "det_config.py"
    path.write_text(f"_ = __import__('os').system('touch {marker}')\nmodel = dict(type='RTMDet')\n")
    with pytest.raises(YmirError) as err:
        load_config(str(path), trust_code=False, scope="mmdet")
    assert err.value.code == 300004 and "trust_model_code" in err.value.one_line()
    assert not marker.exists()
    cfg = load_config(str(path), trust_code=True, scope="mmdet")
    assert marker.exists() and cfg.model.type == "RTMDet"


def test_stage_configs_round_trip_as_data_with_tuples(tmp_path):
    from mmengine.config import Config

    cfg = Config(dict(model=dict(type="RTMDet", init_cfg=dict(type="Pretrained", checkpoint="/in/x.pth"),
                                 backbone=dict(type="CSPNeXt", pretrained="/in/y.pth")),
                      test_pipeline=[dict(type="Resize", scale=(640, 480), keep_ratio=True)]))
    dump_config(cfg, str(tmp_path / "c.yaml"))
    text = (tmp_path / "c.yaml").read_text()
    assert "!!python/tuple" in text and "!!python/object" not in text
    back = load_config(str(tmp_path / "c.yaml"), trust_code=False, scope="mmdet")
    assert back.test_pipeline[0]["scale"] == (640, 480) and isinstance(back.test_pipeline[0]["scale"], tuple)
    # a stage's weights replace these: they would make building the model read other files
    assert "init_cfg" not in back.model and "pretrained" not in back.model.backbone


def test_values_that_are_not_data_are_not_written(tmp_path):
    with pytest.raises(ValueError):
        dump_config({"model": {"type": "RTMDet", "act": print}}, str(tmp_path / "c.yaml"))


def test_the_safe_loader_keeps_other_python_tags_an_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("a: !!python/tuple [1, 2]\nb: !!python/complex 1+2j\n")
    with pytest.raises(YmirError) as err:
        read_config_data(str(path))
    assert err.value.code == 300004
    assert check_config_data({"a": (1, 2)}, "x", known_types=set()) == {"a": (1, 2)}


# ---------------------------------------------------------------- end to end, every kind

def _stage_dir(ws: Path) -> Path:
    return next(p.parent for p in (ws / "in" / "models").rglob("ymir-model.yaml"))


@pytest.mark.parametrize("kind", KINDS)
def test_a_stage_whose_config_is_python_is_refused_and_runs_nothing(stage_of, tmp_path, kind):
    ws = task_ws(stage_of(kind), tmp_path / "ws", kind, "infer", n=4)
    marker = _marker(tmp_path)
    stage = _stage_dir(ws)
    data = read_config_data(str(stage / CONFIG_NAME[kind]))
    py = stage / CONFIG_NAME[kind].replace(".yaml", ".py")
    # an older run of this image wrote its stage config as Python: the same config, as code
    py.write_text(f"_ = __import__('os').system('touch {marker}')\n" +
                  "".join(f"{k} = {v!r}\n" for k, v in data.items()))
    meta = yaml.safe_load((stage / "ymir-model.yaml").read_text())
    meta["config"] = py.name
    (stage / "ymir-model.yaml").write_text(yaml.safe_dump(meta))
    assert run(str(ws / "in"), str(ws / "out")) == 1
    rec = monitor(ws)
    assert rec["state"] == 4 and rec["return_code"] == 300004
    assert py.name in rec["message"] and "trust_model_code" in rec["message"]
    assert not marker.exists() and not (ws / "out" / "infer-result.json").exists()
    # trusted explicitly, the older stage still works
    shutil.rmtree(ws / "out")
    (ws / "out").mkdir()
    set_config(ws, trust_model_code=True)
    assert run(str(ws / "in"), str(ws / "out")) == 0
    assert marker.exists() and verify_output(str(ws / "in"), str(ws / "out")) == []


@pytest.mark.parametrize("kind", KINDS)
def test_a_stage_whose_data_config_builds_a_dotted_type_is_refused(stage_of, tmp_path, kind):
    ws = task_ws(stage_of(kind), tmp_path / "ws", kind, "infer", n=4)
    marker = _marker(tmp_path)
    path = _stage_dir(ws) / CONFIG_NAME[kind]
    data = read_config_data(str(path))
    data["model"]["data_preprocessor"] = {"type": "subprocess.getoutput", "cmd": f"touch {marker}"}
    dump_config(data, str(path))
    assert run(str(ws / "in"), str(ws / "out")) == 1
    rec = monitor(ws)
    assert rec["return_code"] == 300004 and CONFIG_NAME[kind] in rec["message"]
    assert "model.data_preprocessor.type" in rec["message"] and not marker.exists()


def test_a_training_config_file_from_in_is_read_as_data(stage_of, tmp_path):
    """``config_file`` may name a config the user put in /in: Python is refused there too."""
    from executor.workspace import make_workspace
    from stages import run_cli

    ws = tmp_path / "train"
    make_workspace(str(ws), "seg", "train", num_train=8, num_val=4,
                   overrides={"config_file": "/in/my_model.py", "max_iters": 1, "interval": 1,
                              "workers_per_gpu": 0})
    marker = _marker(tmp_path)
    (ws / "in" / "my_model.py").write_text(f"_ = __import__('os').system('touch {marker}')\n")
    r = run_cli(ws)
    assert r.returncode == 1 and monitor(ws)["return_code"] == 300004 and not marker.exists()
    assert "my_model.py" in monitor(ws)["message"]


def test_a_two_stage_config_names_its_roi_layer_by_mmcv_ops_name_only():
    import mmdet.models  # noqa: F401  (fills the registries the check reads)
    from mmengine.config import Config

    from ymir_tasks.common.mmdet_config import model_pads, test_pipeline

    cfg = Config.fromfile("configs/iseg/mask_rcnn_r50.py").to_dict()
    check_config_data({"model": cfg["model"]}, "iseg_config.yaml")  # RoIAlign: an mmcv.ops layer, allowed
    cfg["model"]["roi_head"]["mask_roi_extractor"]["roi_layer"]["type"] = "os.system"
    with pytest.raises(YmirError, match="mask_roi_extractor.roi_layer.type"):
        check_config_data({"model": cfg["model"]}, "iseg_config.yaml")
    # RoIAlign is allowed where mmdet reads it by name from mmcv.ops, nowhere else
    with pytest.raises(YmirError, match="not a class"):
        check_config_data({"model": {"type": "RoIAlign"}}, "iseg_config.yaml")
    # the two-stage model pads its batch itself: no Pad step (mmdet would clip boxes to the square)
    assert model_pads(Config(cfg).model) and [s["type"] for s in test_pipeline(256, False, pad=False)] == \
        ["YmirLoadImage", "Resize", "PackDetInputs"]
