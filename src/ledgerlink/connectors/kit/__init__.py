"""What every connector shares: the seams, the transport, errors, retry decisions, batching, webhook helpers."""
