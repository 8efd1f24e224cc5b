"""API keys: stored as hashes, checked on every request when auth is on."""
