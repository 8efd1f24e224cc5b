"""create_app(): routers, error handlers, and the lifespan that migrates the database,
registers the bundled model and runs the embedded worker and the reaper."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dramatiq
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from embedtune import __version__
from embedtune.batches.router import router as batches_router
from embedtune.config import Settings, get_settings
from embedtune.db import new_session
from embedtune.errors import install_error_handlers
from embedtune.fine_tuning import service as fine_tuning
from embedtune.fine_tuning.actors import FineTuningQueue
from embedtune.fine_tuning.reaper import Reaper
from embedtune.fine_tuning.router import router as fine_tuning_router
from embedtune.limits import BodySizeLimit
from embedtune.migrations import upgrade_database
from embedtune.models import service as models
from embedtune.models.router import router as models_router
from embedtune.queue import build_broker

logger = logging.getLogger(__name__)

#: Seconds a stopping embedded worker waits for its trainings to hand their tasks back.
WORKER_STOP_TIMEOUT_MS = 30_000


def _prepare_database(settings: Settings) -> None:
    upgrade_database(settings.database_url)
    if settings.register_bundled_model:
        with new_session() as session:
            models.register_bundled_model(session)


def create_app() -> FastAPI:
    settings = get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_prepare_database, settings)
        broker = build_broker(settings)
        queue = FineTuningQueue(broker, settings)
        app.state.dispatcher = queue
        worker = None
        if settings.broker_kind == "embedded":
            worker = dramatiq.Worker(broker, worker_threads=settings.embedded_worker_threads)
            worker.start()
            # The in-process queue died with the last process: send every pending task again.
            with new_session() as session:
                resent = fine_tuning.redispatch_stranded(session, 0, queue)
            logger.info("embedded worker started; %d pending task(s) re-sent", resent)
        reaper = Reaper(settings, queue)
        reaper.start()
        try:
            yield
        finally:
            reaper.stop()
            if worker is not None:
                await run_in_threadpool(worker.stop, WORKER_STOP_TIMEOUT_MS)
            broker.close()

    app = FastAPI(
        title="embedtune",
        version=__version__,
        summary="Fine-tune embedding models on your own data.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.add_middleware(
        BodySizeLimit,
        default_limit=settings.max_json_body_bytes,
        upload_limit=settings.max_batch_bytes,
        upload_paths=frozenset({"/batches"}),
    )
    app.include_router(fine_tuning_router)
    app.include_router(models_router)
    app.include_router(batches_router)

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
