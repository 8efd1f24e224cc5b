"""The ``embedtune worker`` command itself."""

from __future__ import annotations

import os
import subprocess

import pytest

from .helpers import EMBEDTUNE


@pytest.mark.parametrize("broker", ["embedded"], indirect=True)
def test_worker_refuses_to_run_on_the_embedded_broker(settings_env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(EMBEDTUNE), "worker"], env=os.environ, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 1
    assert "EMBEDTUNE_BROKER_URL" in result.stderr
    assert "embedtune serve" in result.stderr
