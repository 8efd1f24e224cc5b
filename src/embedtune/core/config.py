"""Settings, read from ``EMBEDTUNE_*`` environment variables."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from fastapi import Depends
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_HOME = Path(".embedtune")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="EMBEDTUNE_", extra="ignore")

    database_url: str = f"sqlite:///{DEFAULT_HOME / 'embedtune.db'}"
    #: Empty means the embedded in-process broker; else ``redis://…`` or ``amqp://…``.
    broker_url: str = ""
    artifacts_dir: Path = DEFAULT_HOME / "artifacts"
    #: ``s3://bucket/prefix``: batches and fine-tuned models go to this object store
    #: (``artifacts_dir`` then holds work directories and a download cache only).
    artifacts_url: str = ""
    #: The S3-compatible endpoint (MinIO, …); empty means AWS. Credentials: AWS env vars.
    s3_endpoint_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8000
    log_level: str = "INFO"
    #: How clients reach this server, for ``best_model_url``; default http://HOST:PORT.
    public_url: str = ""

    max_batch_bytes: int = Field(default=256 * 1024 * 1024, gt=0)
    #: A batch sent as one JSON body is parsed whole (several times its size in memory).
    max_batch_json_bytes: int = Field(default=16 * 1024 * 1024, gt=0)
    max_json_body_bytes: int = Field(default=1024 * 1024, gt=0)

    #: Worker starts of one task (since creation or its last restart) before it fails.
    max_attempts: int = Field(default=3, ge=1)
    heartbeat_interval: float = Field(default=5.0, gt=0)
    heartbeat_timeout: float = Field(default=60.0, gt=0)
    dispatch_timeout: float = Field(default=300.0, gt=0)
    reaper_interval: float = Field(default=10.0, gt=0)
    #: Training threads of the embedded worker (``make serve``).
    embedded_worker_threads: int = Field(default=1, ge=1)
    #: Hard ceiling on one training run; Dramatiq's default (10 min) is far too short.
    task_time_limit_s: int = Field(default=7 * 24 * 3600, gt=0)

    checkpoint_every: int = Field(default=50, ge=1)
    mlflow_tracking_uri: str | None = None
    queue_name: str = "fine-tuning"
    #: How often an idle Redis consumer looks for messages that came without a wake-up
    #: notice; new tasks wake it at once (at most a quarter of the broker's heartbeat).
    consumer_idle_poll_ms: int = Field(default=1000, gt=0)

    #: API keys: ``auto`` requires one as soon as a key exists; ``required`` always;
    #: ``disabled`` never (and lets ``serve`` listen beyond 127.0.0.1 without keys).
    auth: Literal["auto", "required", "disabled"] = "auto"
    #: How long the server trusts its list of active keys (revocation delay).
    auth_cache_seconds: float = Field(default=1.0, ge=0)

    #: Directories under which ``POST /models`` may register a server path, separated by
    #: ``os.pathsep``; empty means the artifact store and the bundled model.
    model_roots: str = ""
    #: Register the bundled all-MiniLM-L6-v2 at start.
    register_bundled_model: bool = True

    #: Models kept in memory for /v1/embeddings; the least recently used is unloaded.
    max_loaded_models: int = Field(default=2, ge=1)
    #: How long the batcher waits for more requests before it encodes a group. Long enough
    #: for the event loop to hand over a burst of concurrent requests (2 ms split 16
    #: clients into small groups: 0.27 of encode()'s throughput; 10 ms: 0.87).
    inference_batch_wait_ms: float = Field(default=10.0, ge=0)
    #: The most texts encoded in one call (one request's texts are never split).
    inference_max_batch_texts: int = Field(default=256, ge=1)
    inference_encode_batch_size: int = Field(default=32, ge=1)
    #: The engine of /v1/embeddings: ``auto`` is, on a CPU, the fastest exported variant that
    #: passed the quality check (as the check timed it), and torch on a GPU.
    inference_backend: Literal["auto", "torch", "onnx", "openvino"] = "auto"
    #: Threads of an ONNX Runtime session (0: its default, one per core).
    inference_threads: int = Field(default=0, ge=0)
    #: The quality check an export passes before it serves: mean cosine with torch's
    #: embeddings, and how far below torch's its MRR@10 may be, on held-out pairs.
    export_min_cosine: float = Field(default=0.99, gt=0, le=1)
    export_max_mrr_drop: float = Field(default=0.005, ge=0)
    #: How many held-out pairs the check encodes (at most).
    export_check_pairs: int = Field(default=200, ge=10)
    #: How often each API process looks for models to export.
    export_interval: float = Field(default=2.0, gt=0)
    #: How often each API process checks the database for a new blue model.
    blue_refresh_interval: float = Field(default=1.0, gt=0)
    #: How long a deploy_as_blue task with wait_on_conflict waits for its turn.
    deploy_wait_timeout: float = Field(default=20 * 60.0, gt=0)
    #: A deployment lock (or a claim on a waiting deployment) older than this was abandoned.
    deploy_lock_timeout: float = Field(default=600.0, gt=0)

    #: Webhooks may target private, loopback and link-local addresses (off: a webhook must
    #: not become a way to reach internal services).
    webhook_allow_private: bool = False
    #: Seconds one delivery attempt may take.
    webhook_timeout: float = Field(default=10.0, gt=0)
    #: Deliveries sent at once by each worker process, beside (never behind) its trainings.
    webhook_slots: int = Field(default=4, ge=1)
    #: How often each worker process looks for deliveries that are due.
    webhook_poll_interval: float = Field(default=0.5, gt=0)
    #: Multiplies the retry schedule (tests shrink it; 1.0 retries for about 27 hours).
    webhook_retry_scale: float = Field(default=1.0, gt=0)
    #: How often an API process reads new task events for its open streams, besides at
    #: once when a commit signals them (in the process, or through a Redis broker).
    stream_poll_interval: float = Field(default=0.05, gt=0)
    #: Seconds between keep-alive comments on an idle stream.
    stream_ping_interval: float = Field(default=15.0, gt=0)

    #: When set, ``/metrics`` answers only ``Authorization: Bearer <this token>`` (else 401).
    metrics_token: str = ""
    #: How long one rendering of ``/metrics`` serves every scrape (0: render each time).
    metrics_cache_seconds: float = Field(default=1.0, ge=0)

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def broker_kind(self) -> Literal["embedded", "redis", "rabbitmq"]:
        if not self.broker_url:
            return "embedded"
        if self.broker_url.startswith(("redis://", "rediss://")):
            return "redis"
        if self.broker_url.startswith(("amqp://", "amqps://")):
            return "rabbitmq"
        raise ValueError(f"unsupported EMBEDTUNE_BROKER_URL scheme: {self.broker_url!r}")


@lru_cache
def get_settings() -> Settings:
    return Settings()


SettingsDep = Annotated[Settings, Depends(get_settings)]
