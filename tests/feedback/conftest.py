from live_server import live_server

__all__ = ["live_server"]
