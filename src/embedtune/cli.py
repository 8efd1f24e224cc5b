"""The ``embedtune`` command."""

from __future__ import annotations

import logging

import typer

from embedtune.config import get_settings

app = typer.Typer(help="Fine-tune embedding models on your own data.", no_args_is_help=True)


def _configure_logging() -> None:
    logging.basicConfig(
        level=get_settings().log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def serve(
    host: str = typer.Option(None, help="Default EMBEDTUNE_HOST (127.0.0.1)"),
    port: int = typer.Option(None, help="Default EMBEDTUNE_PORT (8000)"),
) -> None:
    """Run the API (and, with the embedded broker, the worker in the same process)."""
    import uvicorn

    settings = get_settings()
    _configure_logging()
    uvicorn.run(
        "embedtune.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level.lower(),
    )


def main() -> None:
    app()
