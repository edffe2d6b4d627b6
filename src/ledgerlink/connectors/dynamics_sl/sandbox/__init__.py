"""A stateful Microsoft Dynamics SL sandbox: an HTTP API gateway in front of SL's data model.

JSON field names are SL's column names, SL's rules are enforced (CHAR lengths, DocType directions,
periods, balanced batches, release and posting status machines), and data lives in its own SQLite
file. Run it in-process (``httpx.ASGITransport(app=create_app())``) or as a server (``serve``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ledgerlink.connectors.dynamics_sl.sandbox.app import create_app
from ledgerlink.connectors.dynamics_sl.sandbox.settings import SandboxSettings
from ledgerlink.connectors.dynamics_sl.sandbox.state import SandboxState


def serve(settings: Mapping[str, Any] | SandboxSettings | None = None, host: str = "127.0.0.1",
          port: int = 8060) -> None:
    """Run the sandbox under uvicorn (httptools, uvloop when installed) until interrupted."""
    import uvicorn

    uvicorn.run(create_app(settings), host=host, port=port, http="httptools", loop="auto", log_level="warning",
                access_log=False, lifespan="on")


__all__ = ["SandboxSettings", "SandboxState", "create_app", "serve"]
