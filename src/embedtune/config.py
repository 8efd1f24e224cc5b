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

    #: Register the bundled all-MiniLM-L6-v2 at start.
    register_bundled_model: bool = True

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
