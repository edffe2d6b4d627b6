"""Contract suites: the behaviour every implementation of a seam must show, run against its sandbox."""
