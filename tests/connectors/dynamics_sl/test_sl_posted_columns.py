"""Posted payments as columns (``posted_frame``): the CSV pages of ``ar/posted-payments``, the same documents and
values as the records ``posted_payments`` builds, and a page that cannot be read named by document and field."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import httpx
import polars as pl
import pytest
from starlette.applications import Starlette

from ledgerlink.connectors.dynamics_sl import build_back_office
from ledgerlink.connectors.dynamics_sl.posted import page_frame
from ledgerlink.connectors.kit.columns import POSTED_PAYMENT_SCHEMA, PostedFrame
from ledgerlink.model import CashReceipt, ExternalRef, InvalidInput, Money, Party, ReceiptKind

from .conftest import settings
from .test_sl_memo_rules import DOCS, _cm, _dm, _paid
from .test_sl_sandbox_rules import _customer, _ok, _refused

WHEN = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)
DAY = WHEN.date()
POSTED = "/api/v1/ar/posted-payments"


async def test_the_csv_page_has_the_json_pages_rows_and_its_cursor_in_a_header(api: httpx.AsyncClient) -> None:
    await _customer(api)
    await _paid(api, "50.00", "7000000001")
    await _ok(await api.post(DOCS, json={"CustId": "C1", "DocType": "PP", "CuryOrigDocAmt": "7.00",
                                         "User1": "7000000004", "CustOrdNbr": "WEB, with a comma"}))
    cm = await _ok(await api.post(DOCS, json=_cm("6.00")))
    await _ok(await api.post(DOCS, json=_dm("6.00", User1="8000000001", User5="RFNDPAYOUT", Credits=[
        {"AdjgDocType": "CM", "AdjgRefNbr": cm["RefNbr"], "CuryAdjgAmt": "6.00"}])))
    query = "?DocDateFrom=03/14/2026&DocDateTo=03/15/2026"
    page = await _ok(await api.get(POSTED + query))
    as_csv = await api.get(POSTED + query, headers={"Accept": "text/csv"})
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    assert "x-next-after" not in as_csv.headers
    rows = pl.read_csv(as_csv.content, infer_schema=False).fill_null("").to_dicts()
    # the bulk form: values as SL stores them (an empty text as one space, dates as YYYY-MM-DD HH:MM)
    for row in rows:
        row.update({k: v.strip() for k, v in row.items()}, DocDate=f"{row['DocDate'][5:7]}/{row['DocDate'][8:10]}/"
                   f"{row['DocDate'][:4]}", Crtd_DateTime=row["Crtd_DateTime"].replace(" ", "T"))
    assert rows == [{k: str(v).strip() for k, v in row.items()} for row in page["value"]] and len(rows) == 3

    first = await api.get(POSTED + query + "&$top=2", headers={"Accept": "text/csv"})
    assert first.headers["x-next-after"] == (await _ok(await api.get(POSTED + query + "&$top=2")))["NextAfter"]
    await _refused(await api.get(POSTED + "?DocDateFrom=03/14/2026", headers={"Accept": "text/csv"}), 400, "ARDoc",
                   "DocDateTo")
    chosen = await api.get(POSTED + query + "&$select=RefNbr,CuryOrigDocAmt", headers={"Accept": "text/csv"})
    assert chosen.text.splitlines()[:2] == ["RefNbr,CuryOrigDocAmt", f'"{rows[0]["RefNbr"]}",{rows[0]["CuryOrigDocAmt"]}']
    await _refused(await api.get(POSTED + query + "&$select=RefNbr,Nope", headers={"Accept": "text/csv"}), 400,
                   "ARDoc", "$select")
    await _refused(await api.get(POSTED + query + "&$top=50001", headers={"Accept": "text/csv"}), 400, "ARDoc",
                   "$top")
    assert (await api.get(POSTED + query + "&$top=50000", headers={"Accept": "text/csv"})).status_code == 200


async def test_posted_frame_holds_what_posted_payments_returns(app: Starlette) -> None:
    bo = build_back_office(settings(posted_page_size=40, posted_csv_page_size=40),
                           transport=httpx.ASGITransport(app=app))
    party = await bo.create_party(Party(name="Many", email="many@example.com"))
    receipts = [CashReceipt(key=f"t:pc:{n}", customer_id=party.id or "", amount=Money.of(f"{n + 1}.25", "USD"),
                            received_at=WHEN + timedelta(days=n % 3), kind=ReceiptKind.PREPAYMENT,
                            gateway_ref=ExternalRef(system="cybersource", kind="transaction", id=f"7{n:05d}"))
                for n in range(150)]
    await asyncio.gather(*(bo.apply_receipt(r) for r in receipts))
    records = PostedFrame.from_records(await bo.posted_payments(DAY, DAY + timedelta(days=3)))
    columns = await bo.posted_frame(DAY, DAY + timedelta(days=3))
    assert columns.height == 150 and bo.client.requests_sent > 6  # each day's 50 rows in pages of 40
    assert columns.payments.sort("ref").equals(records.payments.sort("ref"))
    assert (await bo.posted_frame(DAY, DAY)).height == 0
    await bo.aclose()


PAGE = ("DocType,RefNbr,CustId,DocDate,CuryOrigDocAmt,CuryId,User1,OrdNbr,CustOrdNbr,BatNbr,PerPost,Crtd_DateTime\r\n"
        'PA,"000001","C1",2026-03-14 00:00,{amount},{currency},"7000000001"," ","WEB-1","000001",202603,{moment}\r\n')


def test_a_page_reads_into_the_canonical_columns() -> None:
    frame = page_frame(PAGE.format(amount="500.00", currency="JPY", moment="2026-03-14 09:30").encode(),
                       settings(timezone="America/New_York"))
    assert frame.schema == POSTED_PAYMENT_SCHEMA
    assert frame.row(0, named=True) == {
        "ref": "dynamics_sl:ardoc:PA:000001", "kind": "receipt", "cents": 500, "currency": "JPY",
        "posted_on": DAY, "posted_at": datetime(2026, 3, 14, 13, 30, tzinfo=UTC), "txn": "7000000001",
        "order_ref": "WEB-1", "customer": "C1"}


@pytest.mark.parametrize(("amount", "currency", "moment", "field", "reason"), [
    ("1.005", "USD", "2026-03-14 09:30", "PA 000001 CuryOrigDocAmt", "'1.005' is not an amount of USD"),
    ("500.50", "JPY", "2026-03-14 09:30", "PA 000001 CuryOrigDocAmt", "'500.50' is not an amount of JPY"),
    ("-5.00", "USD", "2026-03-14 09:30", "PA 000001 CuryOrigDocAmt", "'-5.00' is not an amount of USD"),
    ("5.00", "XYZ", "2026-03-14 09:30", "PA 000001 CuryId", "'XYZ' is not an ISO 4217 currency"),
    ("5.00", "USD", "noon", "PA 000001 Crtd_DateTime", "'noon' is not a time"),
])
def test_a_page_that_cannot_be_read_names_the_document_and_field(amount: str, currency: str, moment: str,
                                                                  field: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        page_frame(PAGE.format(amount=amount, currency=currency, moment=moment).encode(), settings())
    [issue] = refused.value.issues
    assert issue.field == f"ar/posted-payments {field}" and reason in issue.reason, issue
