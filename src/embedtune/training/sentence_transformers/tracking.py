"""MLflow: one run per task, a nested run per trial logged by transformers' own callback."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from transformers import TrainerCallback
from transformers.integrations.integration_utils import MLflowCallback

logger = logging.getLogger(__name__)


class _MLflowCallback(MLflowCallback):
    """transformers' callback, with metric names MLflow accepts (no ``@``)."""

    def on_log(  # type: ignore[override]
        self, args: Any, state: Any, control: Any, logs: Any, model: Any = None, **kwargs: Any
    ) -> Any:
        safe = _safe_names(logs or {})
        return super().on_log(args, state, control, safe, model=model, **kwargs)  # type: ignore[no-untyped-call]


def _safe_names(values: dict[str, Any]) -> dict[str, Any]:
    return {name.replace("@", "_at_"): value for name, value in values.items()}


class Tracker:
    """Logs a task's run to MLflow when a tracking URI is given; does nothing otherwise.

    A tracking failure is logged and swallowed: losing the trained model for want of a
    tracking server would be worse than a missing run.
    """

    def __init__(self, tracking_uri: str | None, task_id: str, params: dict[str, Any]) -> None:
        self._uri = tracking_uri
        self._task_id = task_id
        self._params = params
        self._stack = contextlib.ExitStack()
        self.active = False

    def __enter__(self) -> Tracker:
        if self._uri:
            try:
                import mlflow

                mlflow.set_tracking_uri(self._uri)
                mlflow.set_experiment("embedtune")
                self._stack.enter_context(mlflow.start_run(run_name=f"task-{self._task_id}"))
                mlflow.log_params(self._params)
                self.active = True
            except Exception:
                logger.exception("MLflow at %s is unavailable; not tracking", self._uri)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._stack.close()
        except Exception:
            logger.exception("ending the MLflow run failed")

    @contextlib.contextmanager
    def trial(self, number: int) -> Iterator[list[TrainerCallback]]:
        """A nested run for one trial; yields the callbacks that log into it."""
        if not self.active:
            yield []
            return
        import mlflow

        with mlflow.start_run(run_name=f"trial-{number}", nested=True):
            yield [_MLflowCallback()]  # type: ignore[no-untyped-call]

    def finish(self, metrics: dict[str, Any], model_dir: Path) -> None:
        """Log the metrics before and after, and the final model."""
        if not self.active:
            return
        try:
            import mlflow

            mlflow.log_param("best_trial", metrics["best_trial"])
            mlflow.log_metrics(
                {
                    **{f"before_{k}": v for k, v in _safe_names(metrics["before"]).items()},
                    **{f"after_{k}": v for k, v in _safe_names(metrics["after"]).items()},
                }
            )
            mlflow.log_artifacts(str(model_dir), artifact_path="model")
        except Exception:
            logger.exception("logging to MLflow at %s failed", self._uri)
