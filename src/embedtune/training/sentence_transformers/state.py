"""What survives a worker crash: the trials planned, those finished, and their checkpoints."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from embedtune.training.options import TRIAL_GRID

logger = logging.getLogger(__name__)

STATE_FILE = "run.json"


@dataclass(frozen=True)
class TrialParams:
    """The settings of one trial."""

    trial: int
    learning_rate: float
    epochs: float
    max_steps: int | None

    @classmethod
    def plan(
        cls, trials: int, learning_rate: float, epochs: float, max_steps: int | None
    ) -> list[TrialParams]:
        """The first ``trials`` points of :data:`TRIAL_GRID` around the given settings."""
        return [
            cls(
                trial=index,
                learning_rate=min(learning_rate * lr_factor, 1.0),
                epochs=epochs * length_factor,
                max_steps=None if max_steps is None else max(1, round(max_steps * length_factor)),
            )
            for index, (lr_factor, length_factor) in enumerate(TRIAL_GRID[:trials])
        ]


@dataclass
class TrialOutcome:
    """A finished trial, as recorded in the run state."""

    params: TrialParams
    after: dict[str, float]
    steps: int
    train_runtime_s: float
    loss_curve: list[dict[str, float | int]]
    eval_curve: list[dict[str, float | int]] = field(default_factory=list)
    #: The kept checkpoints: ``{"name", "step", "metrics", "loss", "best", "last"}``.
    checkpoints: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> TrialOutcome:
        return cls(**{**raw, "params": TrialParams(**raw["params"])})


@dataclass
class RunState:
    """The fingerprint of the run, the base model's metrics and the finished trials."""

    fingerprint: str
    before: dict[str, float] | None = None
    outcomes: dict[int, TrialOutcome] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path, fingerprint: str) -> RunState:
        """The state under ``root`` if it belongs to this run; else wipe ``root`` and start anew.

        A different fingerprint (other data, options or base model) makes the checkpoints
        useless, and so does a state file that cannot be read.
        """
        try:
            raw = json.loads((root / STATE_FILE).read_text())
            if raw["fingerprint"] == fingerprint:
                outcomes = (TrialOutcome.from_json(o) for o in raw["outcomes"])
                return cls(fingerprint, raw["before"], {o.params.trial: o for o in outcomes})
        except FileNotFoundError:
            pass
        except (ValueError, KeyError, TypeError):
            logger.warning("unreadable %s, starting over", root / STATE_FILE)
        shutil.rmtree(root, ignore_errors=True)
        return cls(fingerprint)

    def save(self, root: Path) -> None:
        """Write the state atomically (a crash leaves the old or the new file)."""
        root.mkdir(parents=True, exist_ok=True)
        raw = {
            "fingerprint": self.fingerprint,
            "before": self.before,
            "outcomes": [o.to_json() for o in self.outcomes.values()],
        }
        tmp = root / f"{STATE_FILE}.tmp"
        tmp.write_text(json.dumps(raw))
        tmp.replace(root / STATE_FILE)


def fingerprint(paths: list[Path], options: dict[str, Any], base_model_id: str) -> str:
    """Identifies a run: checkpoints of other data, options or base model are not reused."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as data:
            for chunk in iter(lambda: data.read(1 << 20), b""):
                digest.update(chunk)
    # The model's id, not its path: a restarted worker may find the model elsewhere.
    digest.update(json.dumps([options, base_model_id], sort_keys=True).encode())
    return digest.hexdigest()


def checkpoint_step(path: Path) -> int | None:
    """The step of a ``checkpoint-<step>`` directory, else None."""
    prefix, _, step = path.name.rpartition("-")
    return int(step) if prefix == "checkpoint" and step.isdigit() else None


def last_complete_checkpoint(output_dir: Path) -> str | None:
    """The newest checkpoint that was written to the end, if any.

    A worker killed while saving leaves a checkpoint without its trainer state (written
    last); resuming from it would fail, so it is skipped.
    """
    candidates = sorted(
        (path for path in output_dir.glob("checkpoint-*") if checkpoint_step(path) is not None),
        key=lambda path: checkpoint_step(path) or 0,
        reverse=True,
    )
    for candidate in candidates:
        try:
            json.loads((candidate / "trainer_state.json").read_text())
        except (OSError, ValueError):
            logger.warning("skipping incomplete checkpoint %s", candidate)
            continue
        return str(candidate)
    return None
