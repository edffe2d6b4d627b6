"""The shared BackOffice contract, run against the SL sandbox over HTTP (ASGI transport)."""

from __future__ import annotations

import pytest

from ledgerlink.connectors.kit.contract.back_office import CHECKS, Check, ContractEnv


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
async def test_back_office_contract(check: Check, contract_env: ContractEnv) -> None:
    await check(contract_env)
