
import pytest

import fake_kind
from executor.monitor import parse_monitor
from executor.runner import LOG_TAIL_HEADER, TRACEBACK_HEADER, run
from executor.verify import verify_output

from executor.registry import all_kinds, register_kind, unregister_kind

from conftest import write_config, write_env


@pytest.fixture(autouse=True, scope="module")
def fake_registered():
    all_kinds()  # load the real kinds first
    register_kind(fake_kind.KIND)
    yield
    unregister_kind("fake")


def _monitor(out_dir):
    return parse_monitor((out_dir / "monitor.txt").read_text())


def _mining_ws(in_dir, **cfg):
    write_env(in_dir, run_training=False, run_mining=True, run_infer=True,
              input={"candidate_index_file": "/in/candidate-index.tsv"})
    (in_dir / "assets").mkdir()
    lines = []
    for n in ("aa.jpg", "bb.jpg"):
        (in_dir / "assets" / n).write_bytes(b"\xff\xd8\xff")
        lines.append(f"/in/assets/{n}")
    (in_dir / "candidate-index.tsv").write_text("\n".join(lines) + "\n")
    write_config(in_dir, dict({"class_names": ["a"], "object_type": 99}, **cfg))


def test_training_success_path(io_dirs):
    in_dir, out_dir = io_dirs
    write_env(in_dir)
    write_config(in_dir, {"class_names": ["a"], "object_type": 99, "steps": "4"})
    assert run(str(in_dir), str(out_dir)) == 0
    rec = _monitor(out_dir)
    assert rec["percent"] == 1.0 and rec["state"] == 2
    assert fake_kind.CALLS[-1] == ("training", {"behaviour": "ok", "steps": 4})
    assert verify_output(str(in_dir), str(out_dir), object_type=2) == []


def test_mining_then_infer_in_one_container(io_dirs):
    in_dir, out_dir = io_dirs
    _mining_ws(in_dir)
    fake_kind.CALLS.clear()
    assert run(str(in_dir), str(out_dir)) == 0
    assert [c[0] for c in fake_kind.CALLS] == ["mining", "infer"]
    assert verify_output(str(in_dir), str(out_dir), object_type=2) == []


def test_only_one_task_on_request(io_dirs):
    in_dir, out_dir = io_dirs
    _mining_ws(in_dir)
    fake_kind.CALLS.clear()
    assert run(str(in_dir), str(out_dir), only="infer") == 0
    assert [c[0] for c in fake_kind.CALLS] == ["infer"]


@pytest.mark.parametrize("behaviour,code,text", [
    ("ymir_error", 300002, "a.txt:3"),
    ("crash", 160004, "RuntimeError: kaboom"),
    ("oom", 300103, "out of memory"),
])
def test_failures_end_in_state_4_with_the_code(io_dirs, behaviour, code, text, capsys):
    in_dir, out_dir = io_dirs
    write_env(in_dir)
    write_config(in_dir, {"class_names": ["a"], "object_type": 99, "behaviour": behaviour})
    assert run(str(in_dir), str(out_dir)) == 1
    rec = _monitor(out_dir)
    assert (rec["state"], rec["return_code"]) == (4, code) and text in rec["message"]
    assert text in capsys.readouterr().out
    assert not (out_dir / "models" / "result.yaml").exists()


def test_a_failure_puts_the_log_tail_in_monitor_and_tensorboard(io_dirs):
    """The platform shows monitor.txt: the error's context and traceback must be there, not only
    in the container log; TensorBoard gets the same text."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    in_dir, out_dir = io_dirs
    write_env(in_dir)
    write_config(in_dir, {"class_names": ["a"], "object_type": 99, "behaviour": "crash"})
    assert run(str(in_dir), str(out_dir)) == 1
    details = _monitor(out_dir)["details"]
    assert details[0] == LOG_TAIL_HEADER and TRACEBACK_HEADER in details and len(details) <= 99
    tail = details[:details.index(TRACEBACK_HEADER)]
    # the run's own lines, in order, and nothing of an earlier run in this process
    assert any("kind=fake tasks=training" in ln for ln in tail)
    assert [ln for ln in tail if "batch 7" in ln or "library's own" in ln][-2:] == [
        next(ln for ln in tail if "batch 7" in ln), "a library's own line on stdout"]
    assert "unexpected failure: RuntimeError: kaboom" in tail[-1]
    assert details[-1] == "RuntimeError: kaboom" and any("fake_kind.py" in ln for ln in details)
    acc = EventAccumulator(str(out_dir / "tensorboard"), size_guidance={"tensors": 0})
    acc.Reload()
    text = acc.Tensors("executor error/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "160004: RuntimeError: kaboom" in text and "loading batch 7" in text


def test_a_config_error_also_carries_the_log_tail(io_dirs):
    in_dir, out_dir = io_dirs
    _mining_ws(in_dir, steps="many")
    assert run(str(in_dir), str(out_dir)) == 1
    details = _monitor(out_dir)["details"]
    assert details[0] == LOG_TAIL_HEADER and "'many'" in details[-1] and TRACEBACK_HEADER not in details


def test_bad_config_is_refused_before_any_work(io_dirs):
    in_dir, out_dir = io_dirs
    _mining_ws(in_dir, steps="many")
    fake_kind.CALLS.clear()
    assert run(str(in_dir), str(out_dir)) == 1
    rec = _monitor(out_dir)
    assert rec["return_code"] == 300001 and "'steps'" in rec["message"] and "'many'" in rec["message"]
    assert fake_kind.CALLS == []
    assert not (out_dir / "result.tsv").exists()


def test_bad_env_still_writes_monitor(io_dirs):
    in_dir, out_dir = io_dirs
    (in_dir / "env.yaml").write_text("run_training: [\n")
    assert run(str(in_dir), str(out_dir)) == 1
    rec = _monitor(out_dir)
    assert rec["state"] == 4 and rec["return_code"] == 300001 and "env.yaml" in rec["message"]


@pytest.mark.parametrize("object_type,code", [(42, 300005), ("three", 300001)])
def test_unsupported_object_type(io_dirs, object_type, code):
    in_dir, out_dir = io_dirs
    write_env(in_dir)
    write_config(in_dir, {"class_names": ["a"], "object_type": object_type})
    assert run(str(in_dir), str(out_dir)) == 1
    assert _monitor(out_dir)["return_code"] == code


def test_kind_from_the_manifest_when_config_has_none(io_dirs, tmp_path):
    in_dir, out_dir = io_dirs
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text("object_type: 99\n")
    write_env(in_dir, manifest_file=str(manifest))
    write_config(in_dir, {"class_names": ["a"]})
    assert run(str(in_dir), str(out_dir)) == 0


@pytest.mark.parametrize("flags", [dict(run_training=False), dict(run_training="false", run_mining=0),
                                   dict(run_training=False, run_mining=False, run_infer=False)])
def test_an_env_that_asks_for_no_task_is_a_config_error(io_dirs, flags):
    # The platform always asks for a task: none is a hand-written mistake, not a success.
    in_dir, out_dir = io_dirs
    write_env(in_dir, **flags)
    write_config(in_dir, {"class_names": ["a"], "object_type": 99})
    assert run(str(in_dir), str(out_dir)) == 1
    rec = _monitor(out_dir)
    assert rec["state"] == 4 and rec["return_code"] == 300001
    assert "env.yaml" in rec["message"] and all(k in rec["message"] for k in ("run_training", "run_mining",
                                                                            "run_infer"))
