"""Order to cash end to end: storefront payments at the Cybersource sandbox become SL orders with payments applied."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tests.flows.harness import Pair, running_pair


async def test_a_sale_becomes_a_paid_sales_order_with_its_payment_applied(pair: Pair) -> None:
    await pair.pay("WEB-1001", "102.21", capture=True, email="ann@example.com", merchant_defined={"3": "gift"})
    await pair.settle()
    order = await pair.order("WEB-1001")
    assert Decimal(order["CuryTotOrd"]) == Decimal("102.21")
    assert Decimal(order["BalDue"]) == 0 and Decimal(order["TotPmt"]) == Decimal("102.21")
    assert order["AdminHold"] == 0
    payments = await pair.sl_get("ar/documents", DocType="PA")
    assert len(payments) == 1 and Decimal(payments[0]["CuryOrigDocAmt"]) == Decimal("102.21")
    assert payments[0]["BankAcct"].strip() == "1050"
    [customer] = await pair.sl_get("customers", EMailAddr="ann@example.com")
    assert customer["CustId"].strip() == order["CustID"].strip()
    counters = pair.stats()["counters"]
    assert counters["sales_orders.created"] == 1 and counters["payments.applied"] == 1


async def test_an_authorisation_opens_the_order_and_its_capture_pays_it(pair: Pair) -> None:
    auth = await pair.pay("WEB-2001", "80.00", capture=False)
    await pair.settle()
    order = await pair.order("WEB-2001")
    assert order["Status"] == "O" and Decimal(order["BalDue"]) == Decimal("80.00")
    assert await pair.sl_get("ar/documents", DocType="PA") == []
    await pair.storefront.capture(auth.id, auth.amount, order_reference="WEB-2001")
    await pair.settle()
    order = await pair.order("WEB-2001")
    assert Decimal(order["BalDue"]) == 0


async def test_partial_captures_each_post_a_payment_and_the_last_one_pays_the_order(pair: Pair) -> None:
    from ledgerlink.model import Money

    auth = await pair.pay("WEB-2101", "100.00", capture=False)
    await pair.storefront.capture(auth.id, Money.of("60.00", "USD"), order_reference="WEB-2101")
    await pair.settle()
    assert Decimal((await pair.order("WEB-2101"))["BalDue"]) == Decimal("40.00")
    await pair.storefront.capture(auth.id, Money.of("40.00", "USD"), order_reference="WEB-2101")
    await pair.settle()
    assert Decimal((await pair.order("WEB-2101"))["BalDue"]) == 0
    assert len(await pair.sl_get("ar/documents", DocType="PA")) == 2


async def test_a_payment_in_review_puts_the_order_on_hold_with_the_reason(pair: Pair) -> None:
    await pair.pay("WEB-3001", "55.09", capture=False)  # .09: Decision Manager review
    await pair.settle()
    order = await pair.order("WEB-3001")
    assert order["AdminHold"] == 1
    assert "review" in (order.get("Note") or "").lower()
    assert pair.stats()["counters"]["orders.on_hold"] == 1


async def test_a_decline_posts_nothing_and_is_logged_with_its_reason(pair: Pair, caplog) -> None:  # type: ignore[no-untyped-def]
    await pair.pay("WEB-4001", "20.01", capture=True)  # .01: INSUFFICIENT_FUND
    await pair.settle()
    assert await pair.orders_for("WEB-4001") == []
    assert pair.stats()["counters"]["payments.declined"] == 1
    assert any("declined" in r.getMessage() and "INSUFFICIENT_FUND" in r.getMessage() for r in caplog.records)


async def test_one_customer_is_matched_across_orders_by_email(pair: Pair) -> None:
    await pair.pay("WEB-5001", "10.00", email="bob@example.com")
    await pair.pay("WEB-5002", "11.00", email="BOB@example.com")
    await pair.settle()
    first, second = await pair.order("WEB-5001"), await pair.order("WEB-5002")
    assert first["CustID"] == second["CustID"]
    assert len(await pair.sl_get("customers", EMailAddr="bob@example.com")) == 1


async def test_duplicates_and_reordering_still_post_every_order_exactly_once(
    tmp_path: Path, database_target: tuple[str, str | None]
) -> None:
    url, schema = database_target
    emitter = {"duplicate_rate": 0.5, "reorder_window": 25, "reorder_flush_ms": 20, "seed": 11}
    async with running_pair(tmp_path, url, schema, emitter=emitter) as pair:
        references = [f"WEB-6{i:03d}" for i in range(60)]
        for i, reference in enumerate(references):
            if i % 3 == 0:  # authorise, then capture: two events that may arrive in either order
                auth = await pair.pay(reference, f"{30 + i}.00", capture=False)
                await pair.storefront.capture(auth.id, auth.amount, order_reference=reference)
            else:
                await pair.pay(reference, f"{30 + i}.00", capture=True)
        await pair.settle()
        for reference in references:
            orders = await pair.orders_for(reference)
            assert len(orders) == 1, reference
            assert Decimal(orders[0]["BalDue"]) == 0, reference
        assert len(await pair.sl_get("ar/documents", DocType="PA", **{"$top": 1000})) == 60
        stats = pair.stats()
        assert stats["counters"]["events.duplicates"] > 0
        assert stats["events"].get("dead", 0) == 0


async def test_id_only_notifications_are_completed_from_the_transaction_api(
    tmp_path: Path, database_target: tuple[str, str | None]
) -> None:
    url, schema = database_target
    async with running_pair(tmp_path, url, schema, emitter={"payload_detail": "id_only"}) as pair:
        await pair.pay("WEB-7001", "42.00", capture=True)
        auth = await pair.pay("WEB-7002", "43.00", capture=False)
        await pair.storefront.capture(auth.id, auth.amount, order_reference="WEB-7002")
        await pair.settle()
        assert Decimal((await pair.order("WEB-7001"))["BalDue"]) == 0
        assert Decimal((await pair.order("WEB-7002"))["BalDue"]) == 0


async def test_custom_fields_and_line_descriptions_follow_the_mapping(
    tmp_path: Path, database_target: tuple[str, str | None]
) -> None:
    url, schema = database_target
    mapping = {
        "order": {"line_sku": "WEBSALE", "line_description": "Shop order {order_reference|lower}"},
        "fields": {"order": {"User3": "{merchant_defined.3|upper|truncate:10}"}},
    }
    async with running_pair(tmp_path, url, schema, mapping=mapping) as pair:
        await pair.pay("WEB-8001", "15.00", merchant_defined={"3": "gift wrap please"})
        await pair.settle()
        order = await pair.order("WEB-8001")
        assert order["User3"].strip() == "GIFT WRAP"
        assert order["Lines"][0]["Descr"].strip() == "Shop order web-8001"


async def test_a_mapping_the_back_office_refuses_dead_letters_the_event_with_the_field_named(
    tmp_path: Path, database_target: tuple[str, str | None]
) -> None:
    url, schema = database_target
    mapping = {"fields": {"order": {"User5": "{merchant_defined.3}"}}}  # SOHeader.User5 is numeric in SL
    async with running_pair(tmp_path, url, schema, mapping=mapping) as pair:
        await pair.pay("WEB-8101", "15.00", merchant_defined={"3": "x"})
        await pair.settle()
        assert await pair.orders_for("WEB-8101") == []
        listing = (await pair.engine_http.get("/admin/dlq")).json()
        assert listing["total"] == 1
        detail = (await pair.engine_http.get(f"/admin/dlq/{listing['items'][0]['seq']}")).json()
        assert "User5" in detail["message"] and detail["attempts"] == 1
        assert await pair.sl_get("customers") != []  # the customer step ran before; it is kept, not half-undone


async def test_a_mapping_that_renders_a_card_number_dead_letters_the_event_and_sends_nothing(
    tmp_path: Path, database_target: tuple[str, str | None]
) -> None:
    url, schema = database_target
    # each half passes every check on its own (the gateway, the webhook edge); the mapping joins them
    mapping = {"fields": {"order": {"User3": "{merchant_defined.3}{merchant_defined.4}"}}}
    async with running_pair(tmp_path, url, schema, mapping=mapping) as pair:
        await pair.pay("WEB-8201", "15.00", merchant_defined={"3": "4111 1111", "4": " 1111 1111"})
        await pair.settle()
        assert await pair.orders_for("WEB-8201") == []
        listing = (await pair.engine_http.get("/admin/dlq")).json()
        assert listing["total"] == 1
        detail = (await pair.engine_http.get(f"/admin/dlq/{listing['items'][0]['seq']}")).json()
        assert detail["evidence"]["issues"][0]["field"] == "mapping.fields.order.User3"
        assert detail["attempts"] == 1 and "1111 1111 1111" not in str(detail)


async def test_a_capture_that_overtakes_its_authorisation_builds_the_order_from_the_authorisation(
    tmp_path: Path, database_target: tuple[str, str | None]
) -> None:
    from ledgerlink.model import Money

    url, schema = database_target
    # a window of two, shuffled with seed 1: the capture's notification goes out before the authorisation's
    emitter = {"reorder_window": 2, "reorder_flush_ms": 500, "seed": 1}
    async with running_pair(tmp_path, url, schema, emitter=emitter) as pair:
        auth = await pair.pay("WEB-9001", "100.00", capture=False)
        await pair.storefront.capture(auth.id, Money.of("60.00", "USD"), order_reference="WEB-9001")
        await pair.settle()
        order = await pair.order("WEB-9001")
        assert Decimal(order["CuryTotOrd"]) == Decimal("100.00"), "the order carries the authorised amount"
        assert Decimal(order["BalDue"]) == Decimal("40.00")
        assert pair.stats()["counters"].get("events.stale") == 1, "the late authorisation event is skipped"
