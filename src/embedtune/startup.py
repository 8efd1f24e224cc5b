"""What a starting server says: one short block naming where it is and what it runs.

Alembic's own lines (plugin setup, "Running upgrade …") are demoted to DEBUG: they are
useful when a migration goes wrong and noise on every other start.
"""

from __future__ import annotations

import logging
from pathlib import Path

import fastapi_offline
from sqlalchemy.engine import make_url

from embedtune import __version__
from embedtune.core.config import Settings
from embedtune.core.db import new_session
from embedtune.deployments import repository as deployments
from embedtune.models import service as models

logger = logging.getLogger("embedtune.startup")

#: The loggers Alembic writes its INFO lines to.
ALEMBIC_LOGGERS = ("alembic.runtime.migration", "alembic.runtime.plugins")


class _DemoteToDebug(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno > logging.DEBUG and record.levelno < logging.WARNING:
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).getEffectiveLevel() <= logging.DEBUG
        return True


_DEMOTE = _DemoteToDebug()


def quiet_alembic() -> None:
    """Alembic's INFO lines become DEBUG lines (idempotent)."""
    for name in ALEMBIC_LOGGERS:
        logging.getLogger(name).addFilter(_DEMOTE)


def quiet_progress_bars() -> None:
    """No tqdm bars ("Loading weights") from Transformers in the server's log."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]


def docs_asset_paths(url: str) -> frozenset[str]:
    """The paths of the Swagger UI and ReDoc assets served under ``url``."""
    folder = Path(fastapi_offline.__file__).resolve().parent / "static"
    return frozenset(f"{url}/{asset.name}" for asset in folder.iterdir() if asset.is_file())


def configure_logging(level: str) -> None:
    """The server's log format at ``level``, Alembic's chatter at DEBUG."""
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    quiet_alembic()


def hide_password(url: str) -> str:
    """A database or broker URL fit for a log: the password replaced by ``***``."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # a URL SQLAlchemy cannot parse is shown without its user part
        return url.split("@")[-1]


def _broker(settings: Settings) -> str:
    if settings.broker_kind == "embedded":
        return "embedded (in this process)"
    return hide_password(settings.broker_url)


def _worker(settings: Settings) -> str:
    if settings.broker_kind == "embedded":
        threads = settings.embedded_worker_threads
        return f"running in this process ({threads} training thread{'s' * (threads > 1)})"
    return "none in this process: run `embedtune worker` on the same broker and database"


def _models(settings: Settings) -> tuple[str, str]:
    with new_session() as session:
        blue = deployments.get_blue(session)
    registered = models.BUNDLED_MODEL_ID if settings.register_bundled_model else "none"
    return registered, blue.model_id if blue is not None else "none yet"


def summary(settings: Settings) -> str:
    """The start-up block: dashboard, docs, database, broker, worker, models."""
    registered, blue = _models(settings)
    base = settings.base_url
    rows = (
        ("dashboard", f"{base}/"),
        ("API docs", f"{base}/docs"),
        ("database", hide_password(settings.database_url)),
        ("broker", _broker(settings)),
        ("worker", _worker(settings)),
        ("bundled model", registered),
        ("blue model", blue),
    )
    width = max(len(label) for label, _ in rows)
    lines = [f"embedtune {__version__} is ready"]
    lines += [f"  {label.ljust(width)}  {value}" for label, value in rows]
    return "\n".join(lines)


def log_summary(settings: Settings) -> None:
    logger.info("%s", summary(settings))
