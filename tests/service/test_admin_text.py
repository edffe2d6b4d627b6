"""Free text that reaches SQL: a NUL character is legal in a URL but not in a PostgreSQL string, so every text
query parameter of the admin API is sent one on both databases and must be answered, never a 5xx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.flows.harness import ADMIN_TOKEN
from tests.service.apps import Service, admin_service


@pytest.fixture
async def service(database_target: tuple[str, str | None]) -> AsyncIterator[Service]:
    url, schema = database_target
    async with admin_service(url, schema) as running:
        yield running


def text_parameters(openapi: dict[str, Any]) -> list[tuple[str, str]]:
    """(path, name) of every string query parameter of a GET route without path parameters."""
    found = []
    for path, operations in openapi["paths"].items():
        get = operations.get("get")
        if get is None or "{" in path:
            continue
        for parameter in get.get("parameters", []):
            kinds = parameter["schema"].get("anyOf", [parameter["schema"]])
            if parameter["in"] == "query" and any(kind.get("type") == "string" for kind in kinds):
                found.append((path, parameter["name"]))
    return found


async def test_a_nul_character_in_any_text_parameter_is_a_clear_400_not_a_5xx(service: Service) -> None:
    auth = service.auth(ADMIN_TOKEN)
    parameters = text_parameters((await service.http.get("/openapi.json")).json())
    assert len(parameters) >= 5, parameters
    for path, name in parameters:
        response = await service.http.get(path, params={name: "open\x00; drop"}, headers=auth)
        assert response.status_code == 400, (path, name, response.status_code, response.text[:300])
        assert name in response.text and "NUL" in response.text, response.text
        fine = await service.http.get(path, params={name: "open"}, headers=auth)
        assert fine.status_code < 500, (path, name, fine.text[:300])


async def test_a_nul_character_in_a_body_or_path_is_a_400_that_changes_nothing(service: Service) -> None:
    auth = service.auth(ADMIN_TOKEN)
    before = (await service.http.get("/admin/tokens", headers=auth)).json()
    refused = await service.http.post("/admin/tokens", content=b'{"name": "ops\\u0000", "role": "viewer"}',
                                      headers={**auth, "Content-Type": "application/json"})
    assert refused.status_code == 400 and refused.json()["issues"][0]["field"] == "body", refused.text
    assert (await service.http.get("/admin/tokens", headers=auth)).json() == before
    revoke = await service.http.post("/admin/tokens/viewer-1%00/revoke", json={}, headers=auth)
    assert revoke.status_code == 400 and revoke.json()["issues"][0]["field"] == "path", revoke.text
