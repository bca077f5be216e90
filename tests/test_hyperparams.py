import logging

import pytest
import yaml

from executor.cli import REPO_ROOT, main, template_files
from executor.errors import ErrorCode, YmirError
from executor.hyperparams import Param, Schema, load_config, validate_config
from executor.registry import all_kinds

from conftest import write_config

SCHEMA = Schema("test", "training", [
    Param("max_iters", "int", 100, "iterations", min=1),
    Param("lr", "float", 0.01, "learning rate", min=0.0),
    Param("save_least_file", "bool", True, "keep few files"),
    Param("algo", "str", "RSAL", "algorithm", choices=("RSAL", "RIPU")),
    Param("cfg_options", "str", "", "overrides"),
])


def cfg(**kw):
    base = {"class_names": ["cat", "dog"]}
    base.update(kw)
    return base


def test_ui_strings_behave_like_typed_values():
    c = validate_config(cfg(max_iters="200", lr="1e-3", save_least_file="False", algo="ripu"), SCHEMA)
    assert c["max_iters"] == 200 and isinstance(c["max_iters"], int)
    assert c["lr"] == pytest.approx(1e-3) and isinstance(c["lr"], float)
    assert c["save_least_file"] is False
    assert c["algo"] == "RIPU"
    for text, value in (("true", True), ("0", False), ("1", True), ("TRUE", True), (0, False)):
        assert validate_config(cfg(save_least_file=text), SCHEMA)["save_least_file"] is value
    assert validate_config(cfg(max_iters="2e2"), SCHEMA)["max_iters"] == 200
    assert validate_config(cfg(max_iters=3.0), SCHEMA)["max_iters"] == 3


def test_dropped_and_empty_values_take_defaults():
    c = validate_config(cfg(max_iters=""), SCHEMA)
    assert c["max_iters"] == 100 and c["lr"] == 0.01 and c["cfg_options"] == ""


def test_reserved_keys_are_typed():
    c = validate_config(cfg(gpu_id="0,1", task_id=123, model_params_path="/in/models/a.pth",
                            run_mining="true", object_type="3", export_format="ark:raw"), SCHEMA)
    assert c.gpu_count == 2 and c.gpu_ids == [0, 1]
    assert c.task_id == "123" and c.model_params_path == ["/in/models/a.pth"]
    assert c.run_mining is True and c.object_type == 3 and c.export_format == "ark:raw"
    c = validate_config(cfg(gpu_id="", gpu_count=0), SCHEMA)
    assert c.gpu_ids == [] and c.gpu_count == 0


def test_unknown_keys_are_kept_and_warned_about(caplog):
    with caplog.at_level(logging.WARNING):
        c = validate_config(cfg(learning_rte=0.1), SCHEMA)
    assert c.unknown == {"learning_rte": 0.1}
    assert "learning_rte" in caplog.text


@pytest.mark.parametrize("key,value,expect", [
    ("max_iters", "abc", "expected an integer"),
    ("max_iters", 2.5, "expected an integer"),
    ("max_iters", 0, ">= 1"),
    ("max_iters", True, "expected an integer"),
    ("lr", "fast", "expected a number"),
    ("lr", "nan", "expected a number"),
    ("save_least_file", "maybe", "true or false"),
    ("algo", "CoreSet", "{RSAL, RIPU}"),
    ("cfg_options", ["a", "b"], "expected a string"),
])
def test_bad_values_are_refused_with_300001_naming_key_value_expectation(key, value, expect):
    with pytest.raises(YmirError) as e:
        validate_config(cfg(**{key: value}), SCHEMA, file="/in/config.yaml")
    msg = str(e.value)
    assert e.value.code == ErrorCode.CONFIG
    assert "/in/config.yaml" in msg and f"'{key}'" in msg and repr(value) in msg and expect in msg


@pytest.mark.parametrize("raw,field", [
    ({}, "class_names"),
    ({"class_names": []}, "class_names"),
    ({"class_names": [1, 2]}, "class_names"),
    ({"class_names": ["a", "a"]}, "class_names"),
    ({"class_names": ["a"], "gpu_id": "a,b"}, "gpu_id"),
    ({"class_names": ["a"], "export_format": "ark"}, "export_format"),
    ({"class_names": ["a"], "pretrained_model_params": [1]}, "pretrained_model_params"),
    ({"class_names": ["a"], "gpu_count": "two"}, "gpu_count"),
])
def test_bad_reserved_keys(raw, field):
    with pytest.raises(YmirError) as e:
        validate_config(raw, SCHEMA, file="config.yaml")
    assert e.value.code == ErrorCode.CONFIG and f"'{field}'" in str(e.value)


def test_malformed_config_files(tmp_path):
    path = write_config(tmp_path, text="class_names: [a, b\nmax_iters: 3\n")
    with pytest.raises(YmirError) as e:
        load_config(str(path), SCHEMA)
    assert e.value.code == ErrorCode.CONFIG and "config.yaml:" in str(e.value) and "malformed yaml" in str(e.value)
    path = write_config(tmp_path, text="- class_names\n")
    with pytest.raises(YmirError, match="expected a mapping"):
        load_config(str(path), SCHEMA)
    with pytest.raises(YmirError, match="config file not found"):
        load_config(str(tmp_path / "missing.yaml"), SCHEMA)


def test_committed_templates_equal_what_the_schemas_generate():
    files = template_files(REPO_ROOT / "docker")
    assert files, "no templates generated"
    for path, text in files.items():
        assert path.is_file(), f"{path} is missing: run `ymir-executor templates`"
        assert path.read_text() == text, f"{path} is stale: run `ymir-executor templates`"
    assert main(["templates", "--check"]) == 0


def test_templates_are_flat_and_validate_against_their_schema():
    for kind in all_kinds():
        for task, schema in kind.schemas.items():
            path = REPO_ROOT / "docker" / kind.name / "img-man" / f"{task}-template.yaml"
            data = yaml.safe_load(path.read_text())
            assert isinstance(data, dict) and data
            assert all(not isinstance(v, (dict, list)) for v in data.values()), f"{path} is not flat"
            assert set(data) == {p.name for p in schema.params}
            c = validate_config(dict(data, class_names=["x"]), schema)
            assert c.params == schema.defaults()
        manifest = yaml.safe_load((REPO_ROOT / "docker" / kind.name / "img-man" / "manifest.yaml").read_text())
        assert manifest == {"object_type": kind.object_type}


def test_readme_tables_come_from_the_schema(capsys):
    main(["params"])
    tables = capsys.readouterr().out
    assert "| `max_iters` | int | 20000 |" in tables
    readme = (REPO_ROOT / "README.md").read_text()
    begin, end = readme.index("<!-- params:begin -->"), readme.index("<!-- params:end -->")
    assert readme[begin:end].strip().endswith(tables.strip()), "README tables are stale: run `make templates`"
