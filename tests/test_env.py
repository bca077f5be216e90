
import pytest

from executor.env import PathMap, env_to_dict, load_env
from executor.errors import ErrorCode, YmirError

from conftest import write_env


def test_protocol_110_paths_are_mapped(io_dirs):
    in_dir, out_dir = io_dirs
    write_env(in_dir)
    env = load_env(str(in_dir / "env.yaml"), PathMap(str(in_dir), str(out_dir)))
    assert env.protocol_version == "1.1.0" and env.protocol == (1, 1, 0)
    assert env.run_training and not env.run_mining and not env.run_infer
    assert env.input.training_index_file == f"{in_dir}/train-index.tsv"
    assert env.input.candidate_index_file == ""
    assert env.output.monitor_file == f"{out_dir}/monitor.txt"
    assert env.output.training_result_file == f"{out_dir}/models/result.yaml"
    # the inverse mapping gives back the container paths
    assert env_to_dict(env)["input"]["training_index_file"] == "/in/train-index.tsv"


def test_absent_fields_take_the_documented_defaults(io_dirs):
    in_dir, _ = io_dirs
    (in_dir / "env.yaml").write_text("run_mining: true\n")
    env = load_env(str(in_dir / "env.yaml"))
    assert env.protocol_version == "0.0.1"
    assert env.task_id == "default-task"
    assert env.run_mining and not env.run_infer and not env.run_training
    assert env.output.mining_result_file == "/out/result.tsv"
    assert env.input.models_dir == "/in/models"
    assert env.manifest_file == "/img-man/manifest.yaml"


def test_protocol_100_and_relative_paths_of_old_env_files(io_dirs):
    in_dir, out_dir = io_dirs
    (in_dir / "env.yaml").write_text(
        "protocol_version: 1.0.0\nrun_infer: 'true'\ninput:\n  root_dir: /in\n  candidate_index_file: c.tsv\n")
    env = load_env(str(in_dir / "env.yaml"), PathMap(str(in_dir), str(out_dir)))
    assert env.protocol == (1, 0, 0)
    assert env.run_infer is True
    assert env.input.candidate_index_file == f"{in_dir}/c.tsv"


def test_path_map_leaves_other_paths_and_prefix_lookalikes_alone():
    pm = PathMap("/data/ws/in", "/data/ws/out")
    assert pm("/in/assets/ab/x.jpg") == "/data/ws/in/assets/ab/x.jpg"
    assert pm("/in") == "/data/ws/in"
    assert pm("/input/x") == "/input/x"
    assert pm("/img-man/manifest.yaml") == "/img-man/manifest.yaml"
    assert pm.to_container("/data/ws/out/result.tsv") == "/out/result.tsv"


@pytest.mark.parametrize("text,field", [
    ("run_training: maybe\n", "run_training"),
    ("protocol_version: 2.0.0\n", "protocol_version"),
    ("input: [a, b]\n", "input"),
    ("input:\n  assets_dir: [1, 2]\n", "input.assets_dir"),
    ("run_training: true\nrun_mining: true\n", "run_training"),
    ("task_id: {a: 1}\n", "task_id"),
])
def test_malformed_env_fields_name_the_file_and_field(io_dirs, text, field):
    in_dir, _ = io_dirs
    (in_dir / "env.yaml").write_text(text)
    with pytest.raises(YmirError) as e:
        load_env(str(in_dir / "env.yaml"))
    assert e.value.code == ErrorCode.CONFIG
    assert "env.yaml" in str(e.value) and f"'{field}'" in str(e.value)


def test_malformed_env_yaml_names_the_line(io_dirs):
    in_dir, _ = io_dirs
    (in_dir / "env.yaml").write_text("task_id: t1\ninput: {root_dir: /in\n")
    with pytest.raises(YmirError) as e:
        load_env(str(in_dir / "env.yaml"))
    assert e.value.code == ErrorCode.CONFIG and "env.yaml:" in str(e.value) and "malformed yaml" in str(e.value)


def test_env_that_is_not_a_mapping_or_missing(io_dirs):
    in_dir, _ = io_dirs
    (in_dir / "env.yaml").write_text("- a\n- b\n")
    with pytest.raises(YmirError, match="expected a mapping") as e:
        load_env(str(in_dir / "env.yaml"))
    assert e.value.code == ErrorCode.CONFIG
    with pytest.raises(YmirError, match="env file not found") as e:
        load_env(str(in_dir / "nope.yaml"))
    assert "nope.yaml" in str(e.value)


def test_binary_env_file(io_dirs):
    in_dir, _ = io_dirs
    (in_dir / "env.yaml").write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(YmirError) as e:
        load_env(str(in_dir / "env.yaml"))
    assert e.value.code == ErrorCode.CONFIG and "env.yaml" in str(e.value)
