from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.flows.harness import Pair, running_pair


@pytest.fixture
async def pair(tmp_path: Path, database_target: tuple[str, str | None]) -> AsyncIterator[Pair]:
    url, schema = database_target
    async with running_pair(tmp_path, url, schema) as running:
        yield running
