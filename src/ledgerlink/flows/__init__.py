"""Use cases written once against the canonical seams; a pair is configuration."""
