"""A company to post into: setup rows, currencies, a small chart of accounts, terms, a customer class and
the ``SO`` order type, so an empty sandbox behaves like a freshly configured SL company."""

from __future__ import annotations

import calendar
from datetime import datetime

from ledgerlink.connectors.dynamics_sl.sandbox import tables as T
from ledgerlink.connectors.dynamics_sl.sandbox.settings import SandboxSettings
from ledgerlink.connectors.dynamics_sl.sandbox.store import Store, db_datetime

SEED_PROG = "SANDBOX"
SEED_USER = "SYSADMIN"


def _audit(now: datetime) -> dict[str, str]:
    stamp = db_datetime(now)
    return {"Crtd_DateTime": stamp, "Crtd_Prog": SEED_PROG, "Crtd_User": SEED_USER,
            "LUpd_DateTime": stamp, "LUpd_Prog": SEED_PROG, "LUpd_User": SEED_USER}


def fiscal_period_ends(year: int, periods: int) -> dict[str, str]:
    """Calendar-month periods (period 1 ends in January, so fiscal year = calendar year); a 13th
    period, when configured, is an adjustment period ending on 31 December."""
    ends = {}
    for n in range(13):
        month = min(n + 1, 12)
        last = calendar.monthrange(year, month)[1] if n < 12 else 31
        ends[f"FiscalPerEnd{n:02d}"] = f"{month:02d}{last:02d}" if n < periods else " "
    return ends


def seed_company(store: Store, settings: SandboxSettings, now: datetime) -> None:
    audit = _audit(now)
    period = settings.current_period or f"{now.year:04d}{now.month:02d}"
    cpny = settings.company
    sub = settings.default_sub
    with store.transaction():
        for cury, decpl in settings.currencies.items():
            store.insert(T.CURRNCY, {"CuryId": cury, "Descr": cury, "DecPl": decpl, "Symbol": cury, **audit})
        store.insert(T.GLSETUP, {
            "SetupId": "GL", "CpnyId": cpny, "CpnyName": settings.company_name,
            "BaseCuryId": settings.base_currency, "LedgerID": "ACTUAL", "NbrPer": settings.periods,
            "BegFiscalYr": 0, "PerNbr": period, "LastClosePerNbr": _previous(period, settings.periods),
            **fiscal_period_ends(now.year, settings.periods),
            "RetEarnAcct": settings.retained_earnings_account, "YtdNetIncAcct": settings.retained_earnings_account,
            "ValidateAcctSub": int(settings.validate_acct_sub), "LastBatNbr": "000000", **audit,
        })
        store.insert(T.ARSETUP, {
            "SetupId": "AR", "CpnyID": cpny, "PerNbr": period, "CurrPerNbr": period, "AutoRef": 1,
            "LastRefNbr": "000000", "LastBatNbr": "000000",
            "PrePayAcct": settings.prepayment_account, "PrePaySub": sub,
            "DiscAcct": settings.sales_account, "DiscSub": sub,
            "DfltSBWOAcct": settings.small_balance_account, "DfltSBWOSub": sub,
            "DfltSCWOAcct": settings.small_balance_account, "DfltSCWOSub": sub, **audit,
        })
        _insert_accounts(store, settings, audit)
        for code, active in settings.subaccounts.items():
            store.insert(T.SUBACCT, {"Sub": code, "Descr": f"Subaccount {code}", "Active": int(active), **audit})
        store.insert(T.TERMS, {"TermsId": "00", "Descr": "Due on receipt", "DueType": "D", "DueIntrv": 0, **audit})
        store.insert(T.TERMS, {"TermsId": "30", "Descr": "Net 30", "DueType": "D", "DueIntrv": 30, **audit})
        store.insert(T.CUSTCLASS, {
            "ClassId": settings.customer_class, "Descr": "Web store customers",
            "ArAcct": settings.ar_account, "ArSub": sub, "PrePayAcct": settings.prepayment_account,
            "PrePaySub": sub, "SlsAcct": settings.sales_account, "SlsSub": sub, "Terms": "00", **audit,
        })
        store.insert(T.SOTYPE, {
            "CpnyID": cpny, "SOTypeID": settings.order_type, "Descr": "Sales Order", "Behavior": "SO",
            "Active": 1, "OrdNbrPrefix": settings.order_prefix, "LastOrdNbr": "000000",
            "InvcNbrPrefix": " ", "LastInvcNbr": "000000", "InvcNbrAR": 1, **audit,
        })
    store.load_currencies()


def seed_missing_accounts(store: Store, settings: SandboxSettings, now: datetime) -> None:
    """Add the configured accounts a company lacks (a sandbox file seeded by an older version has no chargeback
    accounts); accounts already there are left exactly as they are."""
    with store.transaction():
        _insert_accounts(store, settings, _audit(now))


def _insert_accounts(store: Store, settings: SandboxSettings, audit: dict[str, str]) -> None:
    for account in settings.accounts:
        if store.one("SELECT 1 FROM Account WHERE Acct = ?", (account.acct,)) is not None:
            continue
        store.insert(T.ACCOUNT, {"Acct": account.acct, "Descr": account.descr, "AcctType": account.acct_type,
                                 "Active": int(account.active), "CuryId": settings.base_currency, "SummPost": "N",
                                 **audit})


def _previous(period: str, periods: int) -> str:
    year, number = int(period[:4]), int(period[4:])
    return f"{year - 1:04d}{periods:02d}" if number == 1 else f"{year:04d}{number - 1:02d}"
