"""The HTTP service: webhook intake, admin API, health and metrics."""
