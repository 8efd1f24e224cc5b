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
    #: How often each API process checks the database for a new blue model.
    blue_refresh_interval: float = Field(default=1.0, gt=0)
    #: How long a deploy_as_blue task with wait_on_conflict waits for its turn.
    deploy_wait_timeout: float = Field(default=20 * 60.0, gt=0)
    #: A deployment lock (or a claim on a waiting deployment) older than this was abandoned.
    deploy_lock_timeout: float = Field(default=600.0, gt=0)

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
