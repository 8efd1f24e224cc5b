"""Discovery of fine-tuning plugins through the ``embedtune.plugins`` entry-point group."""

from __future__ import annotations

import logging
from functools import lru_cache
from importlib.metadata import entry_points

from embedtune.training.plugin import FineTuningPlugin

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "embedtune.plugins"
DEFAULT_PLUGIN = "sentence-transformers"


@lru_cache
def get_plugins() -> dict[str, FineTuningPlugin]:
    """Installed plugins by name. One that fails to load is logged and left out."""
    plugins: dict[str, FineTuningPlugin] = {}
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            plugin = entry_point.load()()
        except Exception:
            logger.exception("plugin %s could not be loaded", entry_point.name)
            continue
        if not isinstance(plugin, FineTuningPlugin):
            logger.error("plugin %s is not a FineTuningPlugin", entry_point.name)
            continue
        plugins[entry_point.name] = plugin
    return plugins


def get_plugin(name: str) -> FineTuningPlugin | None:
    return get_plugins().get(name)
