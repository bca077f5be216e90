"""What can be checked of the images without a Docker engine: the compose file,
the Dockerfile's contract-relevant lines, and start.sh running the CLI against a
read-only in-folder as a non-root user."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from executor.monitor import parse_monitor
from executor.registry import all_kinds

from conftest import REPO, write_config, write_env


def test_compose_services_mount_in_read_only_and_out_writable():
    doc = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert {"train", "mining", "infer"} <= set(doc["services"])
    for name in ("train", "mining", "infer"):
        svc = doc["services"][name]
        assert "./workspace/in:/in:ro" in svc["volumes"] and "./workspace/out:/out" in svc["volumes"]
        assert svc["shm_size"] and svc["user"].startswith("${YMIR_USER")
        assert svc["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
        assert svc["build"]["dockerfile"] == "Dockerfile.cuda"
    assert doc["services"]["train"]["command"][:2] == ["ymir-executor", "train"]
    assert "command" not in doc["services"]["run"]  # the platform's way: the image's CMD


def test_the_cpu_override_drops_the_gpu_reservation_of_every_service():
    class Loader(yaml.SafeLoader):
        pass
    Loader.add_constructor("!reset", lambda loader, node: "RESET")
    base = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    cpu = yaml.load((REPO / "docker-compose.cpu.yml").read_text(), Loader=Loader)
    assert {s: v for s, v in cpu["services"].items()} == {s: {"deploy": "RESET"} for s in base["services"]}


def _final_stage(text):
    return text[text.rindex("\nFROM "):]


def test_dockerfile_runs_start_sh_and_prints_nothing_before_a_command():
    text = (REPO / "Dockerfile.cuda").read_text()
    final = _final_stage(text)
    assert re.search(r"^ENTRYPOINT \[\]$", final, re.M), "the CUDA base image's banner entrypoint must be cleared"
    assert re.search(r'^CMD \["bash", "/usr/bin/start.sh"\]$', final, re.M)
    assert "COPY docker/start.sh /usr/bin/start.sh" in final
    assert "COPY docker/${KIND}/img-man /img-man" in final
    for var in ("HOME=/tmp", "MPLCONFIGDIR=", "XDG_CACHE_HOME=", "PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python"):
        assert var in final
    # the CUDA variant: torch's CUDA build, mmcv compiled with its CUDA ops, by the set-up script
    assert "ARG FORCE_CUDA=1" in text and "download.pytorch.org/whl/cu" in text and "constraints.txt" in text
    assert "bash tools/setup-env.sh" in text and "MMCV_WITH_OPS=1" in (REPO / "tools" / "setup-env.sh").read_text()
    for kind in all_kinds():
        assert (REPO / "docker" / kind.name / "img-man" / "manifest.yaml").is_file()


def test_start_sh_is_a_plain_bash_script_that_execs_the_cli():
    text = (REPO / "docker" / "start.sh").read_text()
    assert text.startswith("#!/usr/bin/env bash")
    assert re.search(r"^exec ymir-executor run ", text, re.M)
    assert subprocess.run(["bash", "-n", str(REPO / "docker" / "start.sh")]).returncode == 0


NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def _usable_by_nobody(python: str, pythonpath: str) -> bool:
    # through a shell, as start.sh will exec it (setpriv alone may open the binary before dropping rights)
    r = subprocess.run(NOBODY + ["sh", "-c", f'exec "{python}" -c "import yaml, executor.cli"'],
                       capture_output=True, env={"PYTHONPATH": pythonpath})
    return r.returncode == 0


def _portable_tree(tmp: Path) -> str:
    """A world-readable copy of what the CLI needs on this path (the package and PyYAML).

    The checkout may sit in a private folder (CI clones into one) and the venv's
    interpreter under root's private home, neither readable by an arbitrary uid;
    inside the image everything is under /opt and /app, readable by all.
    """
    import yaml as yaml_pkg

    lib = tmp / "lib"
    for pkg in ("executor", "ymir_tasks"):
        shutil.copytree(REPO / pkg, lib / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(Path(yaml_pkg.__file__).parent, lib / "yaml", ignore=shutil.ignore_patterns("__pycache__"))
    for so in Path(yaml_pkg.__file__).parent.parent.glob("_yaml*"):
        (shutil.copytree if so.is_dir() else shutil.copy)(so, lib / so.name)
    for p in [lib, *lib.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    return str(lib)


def _cli(tmp: Path):
    """(folder with `ymir-executor`, PYTHONPATH) for the user the test runs start.sh as."""
    if os.geteuid() != 0:
        real = Path(sys.executable).parent / "ymir-executor"
        if real.is_file():
            return str(real.parent), str(REPO)
        python, pythonpath = sys.executable, str(REPO)
    else:
        pythonpath = _portable_tree(tmp)
        python = next((p for p in (sys.executable, "/usr/bin/python3")
                       if Path(p).exists() and _usable_by_nobody(p, pythonpath)), None)
        if python is None:
            pytest.skip("no python interpreter that a non-root user can run")
    shim = tmp / "bin" / "ymir-executor"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nexec "{python}" -m executor "$@"\n')
    shim.chmod(0o755)
    shim.parent.chmod(0o755)
    return str(shim.parent), pythonpath


def _run_start_sh(in_dir: Path, out_dir: Path, tmp: Path):
    bin_dir, pythonpath = _cli(tmp)
    env = {"PATH": bin_dir + ":/usr/bin:/bin", "YMIR_IN": str(in_dir), "YMIR_OUT": str(out_dir),
           "PYTHONPATH": pythonpath, "HOME": "/nonexistent", "PYTHONDONTWRITEBYTECODE": "1"}
    cmd = ["bash", str(tmp / "start.sh")]
    shutil.copy(REPO / "docker" / "start.sh", tmp / "start.sh")
    (tmp / "start.sh").chmod(0o755)
    if os.geteuid() == 0:  # as the platform may: an arbitrary non-root uid
        cmd = NOBODY + cmd
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def _read_only(path: Path):
    for p in [path, *path.rglob("*")]:
        p.chmod(0o555 if p.is_dir() else 0o444)


def test_start_sh_as_non_root_with_read_only_in(public_tmp):
    in_dir, out_dir = public_tmp / "in", public_tmp / "out"
    # a run that asks for no task: exercises env, config and monitor without torch (error 300001)
    write_env(in_dir, run_training=False)
    write_config(in_dir, {"class_names": ["a"]})
    out_dir.mkdir()
    out_dir.chmod(0o777)
    _read_only(in_dir)
    r = _run_start_sh(in_dir, out_dir, public_tmp)
    assert r.returncode == 1, r.stdout + r.stderr
    rec = parse_monitor((out_dir / "monitor.txt").read_text())
    assert rec["state"] == 4 and rec["return_code"] == 300001 and rec["task_id"] == "t-test"
    if os.geteuid() == 0:
        assert (out_dir / "monitor.txt").stat().st_uid == 65534
    assert sorted(p.name for p in in_dir.iterdir()) == ["config.yaml", "env.yaml"]


def test_start_sh_reports_a_bad_config_as_non_root(public_tmp):
    in_dir, out_dir = public_tmp / "in", public_tmp / "out"
    write_env(in_dir)
    write_config(in_dir, text="class_names: [a\n")
    out_dir.mkdir()
    out_dir.chmod(0o777)
    _read_only(in_dir)
    r = _run_start_sh(in_dir, out_dir, public_tmp)
    assert r.returncode == 1
    rec = parse_monitor((out_dir / "monitor.txt").read_text())
    assert rec["state"] == 4 and rec["return_code"] == 300001
    assert "config.yaml" in r.stdout and "malformed yaml" in r.stdout
