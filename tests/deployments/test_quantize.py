"""The int8 quantization runs in a process of its own: its failures come back as reasons."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from embedtune.deployments import quantize


def test_a_child_that_crashes_or_hangs_is_a_reason_not_a_crash() -> None:
    crash = "import os, signal; print('loading', flush=True); os.kill(os.getpid(), signal.SIGSEGV)"
    problem = quantize.run_child([sys.executable, "-c", crash], timeout=60)
    assert problem is not None and "SIGSEGV" in problem

    problem = quantize.run_child([sys.executable, "-c", "import time; time.sleep(60)"], 0.5)
    assert problem == "it took longer than 0.5 s and was stopped"

    problem = quantize.run_child([sys.executable, "-c", "raise SystemExit(7)"], timeout=60)
    assert problem is not None and "exited with code 7" in problem

    assert quantize.run_child([sys.executable, "-c", "pass"], timeout=60) is None


def test_nncfs_own_error_is_the_reason(tmp_path: Path) -> None:
    batches = [{"input_ids": np.ones((2, 4), dtype=np.int64)}]
    problem = quantize.quantize_openvino(tmp_path / "missing.xml", tmp_path / "int8.xml", batches)
    assert problem is not None and "missing.xml" in problem, problem
    assert not (tmp_path / "int8.xml").exists()
    assert list(tmp_path.iterdir()) == [], "the calibration file is removed"
