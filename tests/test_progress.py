"""The quiet terminal of a run by hand: everything to the log file, one bar per step on screen."""
from __future__ import annotations

import io
import subprocess
import sys

from executor.progress import StepBar


SCRIPT = """
import logging, os, subprocess, sys
from executor.progress import quiet_output
logging.basicConfig()
with quiet_output(sys.argv[1]) as term:
    print("from print")
    logging.getLogger("t").warning("from logging")
    sys.stderr.write("from stderr\\n")
    os.write(1, b"from fd 1\\n")
    subprocess.run([sys.executable, "-c", "print('from a child')"], check=True)
    term.write("to the terminal\\n")
print("after the block")
"""


def test_quiet_output_sends_python_c_level_and_child_output_to_the_log(tmp_path):
    log_file = tmp_path / "step.log"
    r = subprocess.run([sys.executable, "-c", SCRIPT, str(log_file)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text = log_file.read_text()
    for line in ("from print", "from logging", "from stderr", "from fd 1", "from a child"):
        assert line in text
    assert r.stdout.splitlines() == ["to the terminal", "after the block"] and r.stderr == ""


def test_a_bar_off_a_terminal_prints_its_start_and_its_end_only():
    out = io.StringIO()
    bar = StepBar("det · train", out, tty=False)
    for k in range(1, 50):
        bar.update(k / 50)
    bar.update(0.1)  # never goes backwards
    bar.close("verify OK")
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].endswith("started") and "verify OK" in lines[1]
    assert "[" + "#" * 24 + "]" not in lines[0] and "98%" in lines[1]


def test_a_bar_on_a_terminal_redraws_one_line_with_an_eta():
    out = io.StringIO()
    bar = StepBar("seg · mine+infer", out, tty=True)
    bar._drawn = 0.0
    bar.t0 -= 10  # ten seconds in
    bar.update(0.5)
    assert "\n" not in out.getvalue() and " 50%" in out.getvalue() and "ETA 0:1" in out.getvalue()
    bar.close("verify OK")
    assert out.getvalue().endswith("verify OK\n") and out.getvalue().count("\n") == 1
