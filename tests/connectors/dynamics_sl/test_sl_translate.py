"""Canonical -> SL rows: lengths, truncation, deterministic ids, dates and periods."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from ledgerlink.connectors.dynamics_sl import translate as tr
from ledgerlink.connectors.dynamics_sl.keys import key_digest
from ledgerlink.model import (
    Address,
    CashReceipt,
    ExternalRef,
    GLAccount,
    InvalidInput,
    Money,
    OrderLine,
    OrderStatus,
    Party,
    ReceiptKind,
    SalesOrder,
)

from .conftest import settings


def _order(**overrides: object) -> SalesOrder:
    fields: dict[str, object] = {
        "key": "k", "customer_id": "WABC", "order_reference": "ORD-1", "order_date": datetime(2026, 3, 1, tzinfo=UTC),
        "currency": "USD", "lines": (OrderLine(sku="SKU-1", description="Widget", quantity=Decimal(2),
                                               unit_price=Money.of("9.99", "USD")),)}
    fields.update(overrides)
    return SalesOrder.model_validate(fields)


def test_customer_id_is_deterministic_and_fits_char15() -> None:
    a = tr.customer_id(Party(email="Ann@Example.com "), "W")
    b = tr.customer_id(Party(email="ann@example.com", name="Other name"), "W")
    assert a == b and len(a) == 15 and a.startswith("W")
    assert tr.customer_id(Party(email="bob@example.com"), "W") != a
    by_ref = tr.customer_id(Party(refs=(ExternalRef(system="cybersource", kind="customer", id="42"),)), "WEB")
    assert len(by_ref) == 15 and by_ref.startswith("WEB")


def test_customer_id_needs_a_match_key() -> None:
    with pytest.raises(InvalidInput, match=r"party\.email"):
        tr.customer_id(Party(name="No Email"), "W")


def test_customer_body_truncates_text_and_drops_codes_that_do_not_fit() -> None:
    party = Party(name="N" * 75, email="ann@example.com", phone="+15555550100",
                  address=Address(line1="L" * 70, city="C" * 40, region="California", postal_code="94107",
                                  country="us"))
    body = tr.customer_body(party, settings())
    assert len(body["Name"]) == 60 and len(body["Addr1"]) == 60 and len(body["City"]) == 30
    assert "State" not in body  # "California" is not a 3-character code: left out, not cut to "Cal"
    assert body["Zip"] == "94107" and body["Country"] == "US" and body["ClassId"] == "WEB"


def test_customer_body_refuses_an_email_longer_than_emailaddr() -> None:
    with pytest.raises(InvalidInput, match="EMailAddr"):
        tr.customer_body(Party(email=("a" * 80) + "@example.com"), settings())


def test_sales_order_body_uses_sl_names_and_validates_identifiers() -> None:
    body = tr.sales_order_body(_order(custom_fields={"User1": "campaign-7"}), settings())
    assert body["CustOrdNbr"] == "ORD-1" and body["SOTypeID"] == "SO" and body["OrdDate"] == "03/01/2026"
    assert body["Lines"] == [{"InvtID": "SKU-1", "Descr": "Widget", "QtyOrd": "2.00", "SlsPrice": "9.99"}]
    assert body["User1"] == "campaign-7"
    with pytest.raises(InvalidInput, match=r"custom_fields\.User2"):
        tr.sales_order_body(_order(custom_fields={"User2": "x"}), settings())
    with pytest.raises(InvalidInput, match="order_reference"):
        tr.sales_order_body(_order(order_reference="R" * 26), settings())
    held = tr.sales_order_body(_order(status=OrderStatus.ON_HOLD, hold_reason="review"), settings())
    assert held["AdminHold"] == 1 and held["Note"] == "review"


def test_line_revenue_account_goes_to_slsacct() -> None:
    line = OrderLine(sku="S", description="d", unit_price=Money.of("1.00", "USD"),
                     revenue_account=GLAccount(account="4000", sub="000000"))
    body = tr.sales_order_body(_order(lines=(line,)), settings())
    assert body["Lines"][0]["SlsAcct"] == "4000" and body["Lines"][0]["SlsSub"] == "000000"


def _receipt(kind: ReceiptKind, received_at: datetime) -> CashReceipt:
    return CashReceipt(key="r", customer_id="WABC", amount=Money.of("10.00", "USD"), received_at=received_at,
                       kind=kind, apply_to=tr.ardoc_ref("IN", "000123") if kind is ReceiptKind.APPLIED else None,
                       order=tr.order_ref("SO000001"),
                       gateway_ref=ExternalRef(system="cybersource", kind="transaction", id="7093456789012345678901"),
                       deposit_account=GLAccount(account="1050", sub="000000"))


def test_receipt_dates_and_periods_follow_the_sl_time_zone() -> None:
    late_utc = datetime(2026, 4, 1, 2, 30, tzinfo=UTC)  # still 31 March in Chicago
    body = tr.receipt_body(_receipt(ReceiptKind.APPLIED, late_utc), settings(timezone="America/Chicago"))
    assert body["DocDate"] == "03/31/2026" and body["PerPost"] == "202603"
    body = tr.receipt_body(_receipt(ReceiptKind.APPLIED, late_utc), settings(date_format="%Y-%m-%d"))
    assert body["DocDate"] == "2026-04-01" and body["PerPost"] == "202604"


def test_applied_receipt_is_a_pa_with_an_application_and_prepayment_a_pp() -> None:
    now = datetime(2026, 3, 2, tzinfo=UTC)
    applied = tr.receipt_body(_receipt(ReceiptKind.APPLIED, now), settings())
    assert applied["DocType"] == "PA" and applied["BankAcct"] == "1050"
    assert applied["Applications"] == [{"AdjdDocType": "IN", "AdjdRefNbr": "000123", "CuryAdjgAmt": "10.00"}]
    assert applied["User1"] == "7093456789012345678901"
    prepaid = tr.receipt_body(_receipt(ReceiptKind.PREPAYMENT, now), settings())
    assert prepaid["DocType"] == "PP" and prepaid["OrdNbr"] == "SO000001" and "Applications" not in prepaid


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(InvalidInput):
        tr.sl_date(datetime(2026, 1, 1), settings())


def test_refs_round_trip() -> None:
    assert tr.ardoc_of(tr.ardoc_ref("PA", "000007"), "f") == ("PA", "000007")
    assert tr.ord_nbr_of(tr.order_ref("SO000009")) == "SO000009"
    with pytest.raises(InvalidInput):
        tr.ord_nbr_of(ExternalRef(system="abas", kind="salesorder", id="1"))


def test_key_digest_is_fixed_width_and_fits_user2() -> None:
    digests = {key_digest(f"dynamics_sl:salesorder:{n}") for n in range(100)}
    assert len(digests) == 100 and {len(d) for d in digests} == {26}
