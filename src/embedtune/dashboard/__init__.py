"""The web dashboard: a small static app, served by the API, that talks to the API."""
