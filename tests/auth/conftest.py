from live_server import live_batch, live_model, live_server

__all__ = ["live_batch", "live_model", "live_server"]
