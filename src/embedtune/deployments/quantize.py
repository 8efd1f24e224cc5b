"""OpenVINO static int8 by NNCF, in a process of its own.

NNCF's quantization runs native code (OpenVINO's statistics collection), imports NNCF's
torch helpers and leaves thread pools behind; were it to crash, it would take down the
process that asked for it, which is an API server. So it runs as
``python -m embedtune.deployments.quantize SOURCE TARGET CALIBRATION``: a fresh
interpreter that holds nothing else and depends on nothing of its caller (not its main
module, not its threads). The caller tokenizes the calibration texts into a ``.npz`` file
beside the graph; the child reads the fp32 graph, quantizes it and writes the int8 one.
The caller learns that it worked, or why not (NNCF's error, a signal, the time limit),
never a crash of its own.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: The longest a quantization may take (it took about 10 s for MiniLM on 2 cores), well
#: inside the ten minutes after which another process may take over a claimed export.
QUANTIZE_TIMEOUT_SECONDS = 300.0
#: The exit code of a quantization that failed and said why (its last line of stderr).
_FAILED = 3

Batch = dict[str, np.ndarray[Any, Any]]


def quantize_openvino(source: Path, target: Path, batches: list[Batch]) -> str | None:
    """Static int8 of the OpenVINO graph at ``source``, calibrated on the tokenized
    ``batches``, written to ``target``; the reason when NNCF is missing or fails."""
    target.parent.mkdir(parents=True, exist_ok=True)
    calibration = target.with_name("calibration.npz")
    arrays = {
        f"{index}/{name}": array
        for index, batch in enumerate(batches)
        for name, array in batch.items()
    }
    np.savez(calibration, **arrays)  # type: ignore[arg-type,unused-ignore]
    try:
        command = [sys.executable, "-m", __name__, str(source), str(target), str(calibration)]
        problem = run_child(command, QUANTIZE_TIMEOUT_SECONDS)
    finally:
        calibration.unlink(missing_ok=True)
    if problem is not None:
        logger.warning("OpenVINO int8 quantization failed: %s", problem)
    return problem


def run_child(command: list[str], timeout: float) -> str | None:
    """Runs ``command``; ``None`` when it exits 0, else why it did not."""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"it took longer than {timeout:g} s and was stopped"
    if done.returncode == 0:
        return None
    said = done.stderr.strip().splitlines()[-1:]
    if done.returncode == _FAILED and said:
        return said[0]
    if done.returncode < 0:
        try:
            name = signal.Signals(-done.returncode).name
        except ValueError:
            name = f"signal {-done.returncode}"
        ended = f"its process was ended by {name}"
    else:
        ended = f"its process exited with code {done.returncode}"
    return f"{ended}; it last said: {said[0]}" if said else ended


def _quantize(source: str, target: str, calibration: str) -> None:
    """NNCF's preset for transformers (smooth quantization), activations too."""
    import nncf
    import openvino

    by_index: dict[int, Batch] = {}
    with np.load(calibration) as stored:
        for key in stored.files:  # "<batch index>/<input name>", as quantize_openvino wrote
            index, name = key.split("/")
            by_index.setdefault(int(index), {})[name] = stored[key]
    batches = [by_index[index] for index in sorted(by_index)]
    nncf.set_log_level(logging.WARNING)
    quantized = nncf.quantize(
        openvino.Core().read_model(source),
        nncf.Dataset(batches),
        preset=nncf.QuantizationPreset.PERFORMANCE,
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(batches),
    )
    openvino.save_model(quantized, target)


def _main(arguments: list[str]) -> int:
    try:
        _quantize(*arguments)
    except ImportError as exc:
        print(f"the {exc.name} package is not installed", file=sys.stderr)
        return _FAILED
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}".replace("\n", " "), file=sys.stderr)
        return _FAILED
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
