"""create_app(): routers, error handlers, and the lifespan that migrates the database,
registers the bundled model and runs the embedded worker and the reaper."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import dramatiq
from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi_offline import FastAPIOffline

from embedtune import __version__, startup
from embedtune.auth.middleware import ActiveKeys, ApiKeyAuth
from embedtune.batches.router import router as batches_router
from embedtune.core import telemetry
from embedtune.core.config import Settings, get_settings
from embedtune.core.db import new_session, transaction
from embedtune.core.errors import install_error_handlers, register_error_format
from embedtune.core.guards import CatchUnexpected, RejectNulInUrl
from embedtune.core.limits import BodySizeLimit
from embedtune.core.openapi import install_openapi
from embedtune.core.queue import build_broker
from embedtune.dashboard.router import PUBLIC_PATHS as DASHBOARD_PATHS
from embedtune.dashboard.router import router as dashboard_router
from embedtune.deployments import exports, serving
from embedtune.deployments.background import DeploymentLoops
from embedtune.deployments.inference import Inference
from embedtune.deployments.openai_compat import OPENAI_PATH_PREFIX, openai_error
from embedtune.deployments.router import router as deployments_router
from embedtune.deployments.waits import TaskDeployer
from embedtune.feedback.router import BULK_PATH
from embedtune.feedback.router import router as feedback_router
from embedtune.fine_tuning.actors import FineTuningQueue
from embedtune.fine_tuning.metrics import MetricsEndpoint
from embedtune.fine_tuning.metrics import registry as metrics_registry
from embedtune.fine_tuning.metrics import router as metrics_router
from embedtune.fine_tuning.reaper import Reaper, redispatch_stranded
from embedtune.fine_tuning.router import router as fine_tuning_router
from embedtune.fine_tuning.stream import EventHub
from embedtune.fine_tuning.stream_router import router as stream_router
from embedtune.migrations import upgrade_database
from embedtune.models import service as models
from embedtune.models.router import router as models_router
from embedtune.webhooks.delivery import Deliverer
from embedtune.webhooks.router import router as webhooks_router
from embedtune.workers.presence import Presence
from embedtune.workers.router import router as workers_router

logger = logging.getLogger(__name__)

#: Seconds a stopping embedded worker waits for its trainings to hand their tasks back.
WORKER_STOP_TIMEOUT_MS = 30_000
EMBEDDED_WORKER_POLL_MS = 100
#: Where /docs and /redoc load their scripts from (shipped in the package: no CDN).
DOCS_ASSETS_URL = "/docs/assets"
#: Served without an API key even when auth is on.
API_PUBLIC_PATHS = frozenset(
    {"/health", "/metrics", "/docs", "/docs/oauth2-redirect", "/redoc", "/openapi.json"}
) | startup.docs_asset_paths(DOCS_ASSETS_URL)


def _prepare_database(settings: Settings) -> None:
    upgrade_database(settings.database_url)
    if settings.register_bundled_model:
        with new_session(writer=True) as session, transaction(session):
            models.register_bundled_model(session)
    with new_session(writer=True) as session, transaction(session):
        serving.ensure_blue(session)


def create_app() -> FastAPI:
    settings = get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await run_in_threadpool(_prepare_database, settings)
        broker = build_broker(settings)
        deployer = app.state.deployer = TaskDeployer(settings)
        queue = FineTuningQueue(broker, settings, deployer)
        app.state.dispatcher = queue
        app.state.event_hub = event_hub = EventHub(settings.stream_poll_interval)
        worker = None
        worker_side: list[Presence | Deliverer] = []
        if settings.broker_kind == "embedded":
            worker = dramatiq.Worker(
                broker,
                worker_threads=settings.embedded_worker_threads,
                # How long an idle consumer blocks: also how long stopping takes.
                worker_timeout=EMBEDDED_WORKER_POLL_MS,
            )
            worker.start()
            # The in-process queue died with the last process: send every pending task again.
            with new_session(writer=True) as session:
                resent = redispatch_stranded(session, 0, queue)
            logger.info("embedded worker started; %d pending task(s) re-sent", resent)
            worker_side = [
                Presence(settings, settings.embedded_worker_threads),
                Deliverer(settings),
            ]
            for part in worker_side:
                part.start()
        telemetry.watch_queue(broker)
        reaper = Reaper(settings, queue)
        reaper.start()
        inference = app.state.inference = Inference.from_settings(
            settings, exports.encoder_opener(settings)
        )
        deployment_loops = DeploymentLoops(settings, inference)
        deployment_loops.start()
        await run_in_threadpool(startup.log_summary, settings)
        # What start-up imported and built (the web, database and serving stacks: about
        # 600,000 objects) lives as long as the process. Frozen, it leaves every full
        # collection: a full pass over it takes 0.1-0.3 s, stalls whichever request is
        # running, and took 28% of a bulk feedback upload. Once a process: an app made
        # again in the same process (tests) leaves its objects to the collector.
        if not gc.get_freeze_count():
            gc.collect()
            gc.freeze()
        try:
            yield
        finally:
            deployment_loops.stop()
            reaper.stop()
            await event_hub.close()
            for part in worker_side:
                await run_in_threadpool(part.stop)
            if worker is not None:
                await run_in_threadpool(worker.stop, WORKER_STOP_TIMEOUT_MS)
            broker.close()
            await run_in_threadpool(inference.close)

    startup.quiet_alembic()
    startup.quiet_progress_bars()
    app: FastAPI = FastAPIOffline(
        title="embedtune",
        version=__version__,
        summary="Fine-tune embedding models on your own data.",
        lifespan=lifespan,
        static_url=DOCS_ASSETS_URL,
        favicon_url="/favicon.ico",
        # No call to the online validator (its badge would load from the internet).
        swagger_ui_parameters={"validatorUrl": None},
    )
    app.state.metrics = MetricsEndpoint(settings.metrics_token, settings.metrics_cache_seconds)
    install_error_handlers(app)
    register_error_format(OPENAI_PATH_PREFIX, openai_error)
    app.add_middleware(RejectNulInUrl)
    app.add_middleware(
        BodySizeLimit,
        default_limit=settings.max_json_body_bytes,
        upload_limit=settings.max_batch_bytes,
        json_upload_limit=settings.max_batch_json_bytes,
        upload_paths=frozenset({"/batches", BULK_PATH}),
    )
    app.add_middleware(
        ApiKeyAuth,
        mode=settings.auth,
        keys=ActiveKeys.from_database(settings.auth_cache_seconds),
        public_paths=API_PUBLIC_PATHS | DASHBOARD_PATHS,
    )
    app.add_middleware(telemetry.HttpMetrics)
    metrics_registry.register(telemetry.registry)
    # Added last, so outermost: it catches what every layer above lets escape.
    app.add_middleware(CatchUnexpected)
    app.include_router(fine_tuning_router)
    app.include_router(models_router)
    app.include_router(batches_router)
    app.include_router(feedback_router)
    app.include_router(deployments_router)
    app.include_router(dashboard_router)
    app.include_router(metrics_router)
    app.include_router(stream_router)
    app.include_router(webhooks_router)
    app.include_router(workers_router)

    install_openapi(app, API_PUBLIC_PATHS | DASHBOARD_PATHS)

    @app.get("/health", tags=["meta"])
    def health() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    return app
