#!/usr/bin/env python3
"""`make image-test`: the built images run exactly the way the YMIR platform runs them.

For every kind (images ``$IMAGE_REPO:cpu-<kind>`` from `make image`), and for the multi-type image
(``cpu-multi``: registration of its list manifest and per-type folders, then 2 and 3 below for each
of its types, picked by config.yaml's object_type, and a type it does not list refused with 300005):

1. registration: ``run --rm IMAGE cat /img-man/<file>`` prints each file of docker/<kind>/img-man
   byte for byte, nothing before or after, nothing on stderr;
2. a training on the sample workspace with no command (the image's CMD), no environment, a
   read-only /in, a writable /out, ``--user 4321:4321`` (no passwd entry), no network and
   ``--shm-size``; then mining + inference in one container with the trained model handed over
   as the platform does (``/in/models/<stage>/...``, ``model_params_path``); ``verify`` on each;
3. a failing run (a broken config.yaml): state 4, code 300001 and the message in monitor.txt,
   a non-zero exit of the container;
4. training from the preset's checkpoint when /app/weights holds it (a checkpoint made here in
   OpenMMLab's format, mounted there: this machine cannot download the real ones), and from
   random weights with the warning when it does not;
5. the compose services ``train``, ``mining``, ``infer`` and ``run`` through podman-compose, with
   the GPU reservation of docker-compose.yml dropped by docker-compose.cpu.yml.

Prints one line per check and a summary with the times; exits 1 when a check failed.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from executor.demo import _handoff_model  # noqa: E402
from executor.monitor import parse_monitor  # noqa: E402
from executor.registry import MULTI_IMAGE, YMIR_OBJECT_TYPES, get_kind, multi_type_kinds  # noqa: E402
from executor.runner import LOG_TAIL_HEADER  # noqa: E402
from executor.verify import verify_output  # noqa: E402
from executor.workspace import make_workspace  # noqa: E402

ENGINE = os.environ.get("ENGINE", "podman")
REPO = os.environ.get("IMAGE_REPO", "localhost/ymir-executor")
KINDS = os.environ.get("KINDS", f"det seg det3d {MULTI_IMAGE}").split()
UID = "4321:4321"
# What this machine needs under podman (it refuses raising process limits; crun cannot use its
# cgroups), passed per command rather than assumed in /etc/containers/containers.conf.
FLAGS = ["--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1000:1000"] \
    if ENGINE == "podman" else []
CONTAINERS_CONF = '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]\n[engine]\nruntime = "runc"\n'
# Small but real runs of each kind on the sample workspaces.
TRAIN = {"det": {"config_file": "tiny", "max_epochs": 10, "val_interval": 5, "samples_per_gpu": 8,
                 "workers_per_gpu": 2},
         "seg": {"config_file": "tiny", "max_iters": 60, "interval": 30, "samples_per_gpu": 8, "workers_per_gpu": 2},
         "det3d": {"config_file": "tiny", "max_epochs": 6, "val_interval": 3, "samples_per_gpu": 4,
                   "workers_per_gpu": 2}}
TASK = {"samples_per_gpu": 4, "workers_per_gpu": 2}


def train_overrides(kind: str) -> Dict[str, object]:
    """TRAIN's settings, else the kind's own demo settings (a kind added later runs too)."""
    return TRAIN.get(kind) or dict(get_kind(kind).demo_overrides.get("training", {}))

results: List[Dict[str, object]] = []


def check(name: str, ok: bool, seconds: float = 0.0, detail: str = "") -> bool:
    results.append({"check": name, "ok": ok, "seconds": round(seconds, 1), "detail": detail})
    print(f"[image-test] {'ok  ' if ok else 'FAIL'} {name}" + (f" ({seconds:.0f} s)" if seconds else "") +
          (f": {detail}" if detail else ""), flush=True)
    return ok


def engine(*args: str, timeout: int = 1800, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([ENGINE, *args], capture_output=True, timeout=timeout, **kw)


def public(ws: Path) -> Path:
    """As the platform leaves a work dir: /in readable by the container's uid, /out writable."""
    for p in [ws, *ws.rglob("*")]:
        p.chmod(0o755 if p.is_dir() else 0o644)
    out = ws / "out"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir()
    out.chmod(0o777)
    return ws


def platform_run(image: str, ws: Path, extra: Sequence[str] = ()) -> subprocess.CompletedProcess:
    """The platform's command line (ymir/command/mir/tools/executant.py): no command, no -e."""
    return engine("run", "--rm", *FLAGS, "--network", "none", "--user", UID, "--shm-size", "2g",
                  "-v", f"{ws / 'in'}:/in:ro", "-v", f"{ws / 'out'}:/out", *extra, image)


def monitor(ws: Path) -> Dict[str, object]:
    return parse_monitor((ws / "out" / "monitor.txt").read_text())


def test_registration(kind: str, image: str) -> None:
    base = ROOT / "docker" / kind / "img-man"
    for f in sorted(p for p in base.rglob("*") if p.is_file()):  # the multi image's sub-folders too
        name = f.relative_to(base).as_posix()
        r = engine("run", "--rm", *FLAGS, image, "cat", f"/img-man/{name}")
        same = r.returncode == 0 and r.stdout == f.read_bytes() and r.stderr == b""
        check(f"{kind}: registration prints /img-man/{name} byte for byte", same,
              detail="" if same else f"exit {r.returncode}, {len(r.stdout)} bytes vs {f.stat().st_size}, "
                                     f"stderr {r.stderr[:200]!r}")


def timed_run(name: str, image: str, ws: Path, extra: Sequence[str] = ()) -> Optional[str]:
    t = time.time()
    r = platform_run(image, ws, extra)
    log = (r.stdout + r.stderr).decode("utf-8", "replace")
    (ws / "container.log").write_text(log)
    problems = verify_output(str(ws / "in"), str(ws / "out")) if r.returncode == 0 else []
    ok = r.returncode == 0 and not problems
    detail = "verify OK" if ok else f"exit {r.returncode}; " + ("; ".join(map(str, problems[:3])) or log[-800:])
    return log if check(name, ok, time.time() - t, detail) else None


def test_docker_client(image: str, root: Path) -> None:
    """The README's literal `docker run` command, the docker client talking to podman's API."""
    docker = shutil.which("docker")
    if ENGINE != "podman" or docker is None:
        return
    conf = root / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    sock = root / "podman.sock"
    service = subprocess.Popen(["podman", "system", "service", "--time=0", f"unix://{sock}"],
                               env=dict(os.environ, CONTAINERS_CONF=str(conf)), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            if sock.exists():
                break
            time.sleep(0.1)
        kind = image.rsplit("-", 1)[-1]
        r = subprocess.run([docker, "run", "--rm", image, "cat", "/img-man/manifest.yaml"], capture_output=True,
                           env=dict(os.environ, DOCKER_HOST=f"unix://{sock}"), timeout=300)
        check("docker client against podman: `docker run --rm IMAGE cat /img-man/manifest.yaml` byte for byte",
              r.returncode == 0 and r.stdout == (ROOT / "docker" / kind / "img-man" / "manifest.yaml").read_bytes()
              and r.stderr == b"", detail=f"exit {r.returncode} {r.stderr[:200]!r}")
    finally:
        service.terminate()
        service.wait(timeout=30)


def test_kind(kind: str, image: str, root: Path, label: str = "") -> Optional[Path]:
    """``label``: the multi-type image running ``kind`` (its registration is checked once)."""
    if not label:
        test_registration(kind, image)
    label = label or kind
    train = root / label / "train"
    make_workspace(str(train), kind, "train", overrides=train_overrides(kind))
    log = timed_run(f"{label}: training as the platform runs it (uid {UID}, no env, ro /in, no network)", image,
                    public(train))
    if log is None:
        return None
    check(f"{label}: the tiny preset says it starts from random weights", "training from random weights" in log)
    mine = root / label / "mine"
    make_workspace(str(mine), kind, "mine", overrides=TASK)
    _handoff_model(train / "out", mine)
    if timed_run(f"{label}: mining + inference in one container with the handed-over model", image,
                 public(mine)) is not None:
        sheet = mine / "out" / "mining-previews" / "contact-sheet.png"
        check(f"{label}: mining previews and their contact sheet in /out/mining-previews", sheet.is_file() and
              len(list(sheet.parent.glob("[0-9][0-9]-*.png"))) >= 4)
    config_dump = list((train / "out" / "work_dirs").glob("*/mmengine-config.py"))
    check(f"{label}: the log says where mmengine's config dump is, instead of printing it",
          bool(config_dump) and "the full mmengine config is in /out/work_dirs/" in log and "\nConfig:\n" not in log)

    bad = root / label / "bad"
    make_workspace(str(bad), kind, "train", overrides=train_overrides(kind))
    (bad / "in" / "config.yaml").write_text("class_names: [a, b\nmax_epochs: 3\n")
    r = platform_run(image, public(bad))
    rec = monitor(bad) if (bad / "out" / "monitor.txt").exists() else {}
    check(f"{label}: a broken config.yaml fails with state 4, 300001 and the message",
          r.returncode != 0 and rec.get("state") == 4 and rec.get("return_code") == 300001 and
          "config.yaml" in str(rec.get("message", "")), detail=f"exit {r.returncode}, monitor {rec.get('message')}")
    check(f"{label}: its monitor.txt detail lines hold the log's last lines",
          LOG_TAIL_HEADER in rec.get("details", []))
    return train


def test_multi(image: str, root: Path) -> None:
    """The multi-type image: every type it lists, and one it does not, refused."""
    test_registration(MULTI_IMAGE, image)
    kinds = multi_type_kinds()
    for kind in kinds:
        test_kind(kind.name, image, root, label=f"{MULTI_IMAGE}/{kind.name}")
    types = [k.object_type for k in kinds]
    other = next((t for t in YMIR_OBJECT_TYPES if t not in types), None)
    if other is None:
        return
    ws = root / MULTI_IMAGE / "other-type"
    make_workspace(str(ws), kinds[0].name, "train", overrides=dict(train_overrides(kinds[0].name), object_type=other))
    r = platform_run(image, public(ws))
    rec = monitor(ws) if (ws / "out" / "monitor.txt").exists() else {}
    check(f"{MULTI_IMAGE}: config.yaml object_type {other} (not listed) fails with state 4 and 300005",
          r.returncode != 0 and rec.get("state") == 4 and rec.get("return_code") == 300005
          and not (ws / "out" / "models" / "result.yaml").exists(),
          detail=f"exit {r.returncode}, monitor {rec.get('message')}")


def test_preset_weights(image: str, root: Path) -> None:
    """rtmdet_tiny with and without its checkpoint in /app/weights."""
    from ymir_tasks.common.preset_weights import checkpoint_name, preset_checkpoints

    url = dict((p, u) for _, p, u in preset_checkpoints())["rtmdet_tiny"]
    weights = root / "weights"
    weights.mkdir()
    subprocess.run([sys.executable, "-c", f"""
import torch, mmdet.utils
from mmengine.config import Config
from mmengine.registry import MODELS
mmdet.utils.register_all_modules(True)
cfg = Config.fromfile({str(ROOT / 'configs/det/rtmdet_tiny.py')!r}); cfg.model.bbox_head.num_classes = 80
torch.save(MODELS.build(cfg.model).state_dict(), {str(weights / checkpoint_name(url))!r})
"""], check=True, capture_output=True)
    public(weights)
    cfg = {"config_file": "rtmdet_tiny", "img_size": 64, "max_epochs": 1, "samples_per_gpu": 8, "workers_per_gpu": 0}
    for name, extra, needle in (
            ("starts from the preset's checkpoint in /app/weights", ["-v", f"{weights}:/app/weights:ro"],
             "(the preset's checkpoint):"),
            ("without it, warns and starts from random weights", [], "training from random weights")):
        ws = root / f"weights-{len(name)}"
        make_workspace(str(ws), "det", "train", num_train=8, num_val=4, overrides=cfg)
        log = timed_run(f"det rtmdet_tiny: training {name}", image, public(ws), extra)
        line = next((ln for ln in (log or "").splitlines() if needle in ln), "")
        check(f"det rtmdet_tiny: the log says so ({needle})", bool(line), detail=line.split(": ", 1)[-1][:200])


def podman_compose() -> Optional[str]:
    """podman-compose >= 1.1 (it reads `!reset`); Debian's 1.0 does not, so one from PyPI goes
    into build/tools-venv on first use."""
    venv = ROOT / "build" / "tools-venv"
    exe = venv / "bin" / "podman-compose"
    if not exe.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        r = subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "podman-compose>=1.1"], capture_output=True)
        if r.returncode != 0:
            return None
    return str(exe)


def test_compose(kind: str, image: str, trained: Path, root: Path) -> None:
    """The compose services through podman-compose, the GPU reservation dropped by the override."""
    compose = podman_compose()
    if not check("compose: podman-compose >= 1.1 available", compose is not None):
        return
    repo, tag = image.rsplit(":", 1)
    engine("tag", image, f"{repo}:{kind}")
    project = root / "compose"
    (project / "workspace").mkdir(parents=True)
    for f in ("docker-compose.yml", "docker-compose.cpu.yml"):
        shutil.copy(ROOT / f, project / f)
    conf = root / "containers.conf"
    conf.write_text(CONTAINERS_CONF)
    env = dict(os.environ, CONTAINERS_CONF=str(conf), YMIR_IMAGE=repo, KIND=kind, YMIR_USER=UID,
               SHM_SIZE="2g", COMPOSE_PROJECT_NAME="ymirimagetest")
    base = [compose, "-f", "docker-compose.yml"]
    with_cpu = base + ["-f", "docker-compose.cpu.yml"]
    # the base file asks for every GPU; the override drops that, nothing else
    dry = []
    for files in (base, with_cpu):
        r = subprocess.run([files[0], "--verbose", "--dry-run", *files[1:], "run", "--rm", "train"], cwd=project,
                           env=env, capture_output=True, text=True)
        dry.append(r.stdout + r.stderr)
    check("compose: docker-compose.yml reserves the GPUs and docker-compose.cpu.yml drops them",
          "nvidia.com/gpu=all" in dry[0] and "nvidia.com/gpu" not in dry[1])
    for service_name, source in (("train", "train"), ("mining", "mine"), ("infer", "mine"), ("run", "mine")):
        ws = project / "workspace"
        shutil.rmtree(ws)
        if source == "train":
            make_workspace(str(ws), kind, "train", overrides=train_overrides(kind))
        else:
            make_workspace(str(ws), kind, "mine", overrides=TASK)
            _handoff_model(trained / "out", ws)
        public(ws)
        t = time.time()
        r = subprocess.run(with_cpu + ["run", "--rm", service_name], cwd=project, env=env, capture_output=True,
                           timeout=1800)
        tasks = {"train": ["training"], "mining": ["mining"], "infer": ["infer"], "run": None}[service_name]
        problems = verify_output(str(ws / "in"), str(ws / "out"), tasks=tasks) if r.returncode == 0 else []
        ok = r.returncode == 0 and not problems
        check(f"compose: `podman-compose run {service_name}` ({kind}, cpu override)", ok, time.time() - t,
              "verify OK" if ok else f"exit {r.returncode}; {problems[:2]} "
                                     f"{(r.stdout + r.stderr)[-600:].decode('utf-8', 'replace')}")


def main() -> int:
    t0 = time.time()
    root = Path(tempfile.mkdtemp(prefix="ymir-image-test-"))
    root.chmod(0o755)
    trained: Dict[str, Path] = {}
    try:
        for kind in KINDS:
            image = f"{REPO}:cpu-{kind}"
            if engine("image", "exists", image).returncode != 0 and ENGINE == "podman":
                check(f"{kind}: image {image} exists", False, detail="run `make image` first")
                continue
            if kind == MULTI_IMAGE:
                test_multi(image, root)
                continue
            got = test_kind(kind, image, root)
            if got:
                trained[kind] = got
        if "det" in KINDS:
            test_preset_weights(f"{REPO}:cpu-det", root)
        test_docker_client(f"{REPO}:cpu-{KINDS[0]}", root)
        if trained:
            kind = "seg" if "seg" in trained else next(iter(trained))
            test_compose(kind, f"{REPO}:cpu-{kind}", trained[kind], root)
    finally:
        if os.environ.get("KEEP") != "1":
            shutil.rmtree(root, ignore_errors=True)
        else:
            print(f"[image-test] workspaces kept in {root}")
    failed = [r for r in results if not r["ok"]]
    total = time.time() - t0
    (ROOT / "build").mkdir(exist_ok=True)
    (ROOT / "build" / "image-test.json").write_text(json.dumps({"seconds": round(total), "results": results},
                                                               indent=1))
    print(f"[image-test] {len(results) - len(failed)}/{len(results)} checks passed in {total / 60:.1f} min "
          "(build/image-test.json)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
