"""embedtune: a service that fine-tunes embedding models on your own data."""

__version__ = "0.1.0"
