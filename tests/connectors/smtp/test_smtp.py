"""The SMTP channel against the sink: delivery, and failures classified by what the server answered."""

from __future__ import annotations

import socket

import httpx
import pytest

from ledgerlink.connectors.kit.errors import Rejected, RetryableError
from ledgerlink.connectors.smtp import build_channel
from ledgerlink.connectors.smtp.channel import message_id
from ledgerlink.connectors.smtp.sandbox import SMTPSink, create_app
from ledgerlink.model import Notification

NOTICE = Notification(key="notify:sub-1:2026-04-01:1", to="ada@example.com", subject="Your payment failed",
                      body="We could not charge your card ending 4111.\nWe will try again on 4 April.")


async def test_a_notice_arrives_whole() -> None:
    async with SMTPSink({"smtp_port": 0}) as sink:
        channel = build_channel({"host": "127.0.0.1", "port": sink.port, "from_address": "billing@shop.example"})
        await channel.send(NOTICE)
        [message] = sink.messages
        assert message["to"] == ["ada@example.com"] and message["from"] == "billing@shop.example"
        assert message["subject"] == NOTICE.subject and "try again on 4 April" in message["body"]
        assert message["key"] == NOTICE.key and message["message_id"] == message_id(NOTICE.key)


async def test_temporary_and_permanent_refusals() -> None:
    async with SMTPSink({"smtp_port": 0, "fail_next": [451, 550]}) as sink:
        channel = build_channel({"port": sink.port})
        with pytest.raises(RetryableError) as temporary:
            await channel.send(NOTICE)
        assert temporary.value.status == 451
        with pytest.raises(Rejected) as permanent:
            await channel.send(NOTICE)
        assert permanent.value.status == 550
        await channel.send(NOTICE)
        assert len(sink.messages) == 1 and sink.refused == 2


async def test_no_server_is_worth_retrying() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(RetryableError):
        await build_channel({"port": port, "timeout_seconds": 2}).send(NOTICE)


async def test_the_sink_app_shows_what_arrived() -> None:
    app = create_app({"smtp_port": 0})
    sink = app.state.sink
    async with sink:
        await build_channel({"port": sink.port}).send(NOTICE)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://sink") as http:
            [message] = (await http.get("/messages", params={"to": "ada@example.com"})).json()
            assert message["subject"] == NOTICE.subject
            assert (await http.post("/__sandbox/faults", json={"fail_next": [99]})).status_code == 400
            assert (await http.delete("/messages")).json() == []
