"""Delivers signed notifications the way Cybersource does (spec §6.3 to §6.5), with knobs to make it hard.

Publishing never waits: a state change queues its notifications and the API
answers at once. Worker tasks send them concurrently over keep-alive
connections, one per worker (an ``httpx`` transport, injectable so a test can
route webhooks into an in-process ASGI engine), and retry anything but a 2xx with
capped, jittered backoff; each attempt gets a new ``transactionTraceId``, a new
signature timestamp and ``requestType`` RETRY.

Knobs (``EmitterSettings``, changeable at run time): duplicate deliveries,
dropped ones (never sent, as when a receiver's outage outlasts every retry),
a reorder window (hold N events, shuffle, send), random delays, full or id-only
payloads, the signature variant, and a seed that makes all of it repeatable.

The request is sent through ``transport.handle_async_request`` rather than an
``AsyncClient``: the client's per-request machinery (URL merging, cookies, auth
and event hooks) is most of the cost at thousands of deliveries per second,
and none of it is wanted here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
import ssl
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from ledgerlink.connectors.cybersource.sandbox.settings import EmitterSettings
from ledgerlink.connectors.cybersource.webhooks import sign_notification
from ledgerlink.connectors.kit.retry import Backoff

log = logging.getLogger(__name__)
USER_AGENT = "Vert.x-WebClient/4.5.10 (ledgerlink sandbox)"


@dataclass(slots=True, frozen=True)
class Notification:
    """One event for one subscription; every delivery attempt of it is built from this."""

    webhook_id: str
    url: str
    key_id: str
    key: bytes
    organization_id: str
    product_id: str
    event_type: str
    event_date: str
    payload_json: bytes  # compact JSON of the ``payload`` field, shared by all subscriptions of the event
    data_id: str
    notification_id: str | None = None  # sent as ``notificationId`` when set (token events)


@dataclass(slots=True)
class _Delivery:
    notification: Notification
    retry_number: int = 0
    timer: asyncio.TimerHandle | None = None


class WebhookEmitter:
    def __init__(
        self,
        settings: EmitterSettings | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings or EmitterSettings()
        self._given_transport = transport
        self._tls: ssl.SSLContext | None = None
        self._clock = clock
        self._rng = random.Random(self.settings.seed)
        self._backoff = self._make_backoff()
        self._queue: asyncio.Queue[_Delivery] | None = None
        self._idle: asyncio.Event | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._backlog: list[_Delivery] = []  # dispatched before start (or left by stop)
        self._held: list[_Delivery] = []  # inside the reorder window
        self._flush_handle: asyncio.TimerHandle | None = None
        self._timers: dict[asyncio.TimerHandle, _Delivery] = {}  # delayed first attempts and retries
        self._urls: dict[str, httpx.URL] = {}
        self._pending = 0
        self.counters = {"emitted": 0, "duplicates": 0, "attempts": 0, "failed_attempts": 0, "delivered": 0,
                         "failed": 0, "dropped": 0}
        self.log: deque[dict[str, Any]] = deque(maxlen=self.settings.log_limit)
        self.dropped: deque[dict[str, Any]] = deque(maxlen=self.settings.log_limit)  # never sent (drop_rate)
        self._dropped: list[Notification] = []  # kept, so a test can deliver them late (``release_dropped``)

    def _make_backoff(self) -> Backoff:
        s = self.settings
        return Backoff(base_seconds=s.retry_base_seconds, cap_seconds=s.retry_cap_seconds, max_attempts=s.max_attempts)

    def configure(self, changes: dict[str, Any]) -> EmitterSettings:
        """Change knobs at run time (concurrency applies at the next start)."""
        self.settings = EmitterSettings.model_validate({**self.settings.model_dump(), **changes})
        if "seed" in changes:
            self._rng.seed(self.settings.seed)
        self._backoff = self._make_backoff()
        if self.log.maxlen != self.settings.log_limit:
            self.log = deque(self.log, maxlen=self.settings.log_limit)
        return self.settings

    @property
    def running(self) -> bool:
        return bool(self._workers)

    @property
    def pending(self) -> int:
        return self._pending

    def stats(self) -> dict[str, Any]:
        return {**self.counters, "pending": self._pending, "held": len(self._held), "running": self.running}

    # --- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        if self._workers:
            return
        self._queue = asyncio.Queue()
        self._idle = asyncio.Event()
        if self._pending == 0:
            self._idle.set()
        size = self.settings.concurrency
        self._workers = [asyncio.create_task(self._work(), name=f"webhook-emitter-{i}") for i in range(size)]
        backlog, self._backlog = self._backlog, []
        for delivery in backlog:
            self._queue.put_nowait(delivery)
        if self._held:
            self._schedule_flush()

    async def stop(self) -> None:
        """Stop sending; anything not yet delivered is kept and goes out after the next start."""
        workers, self._workers = self._workers, []
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
        for handle, delivery in self._timers.items():
            handle.cancel()
            delivery.timer = None
            self._backlog.append(delivery)
        self._timers.clear()
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        if self._queue is not None:
            while not self._queue.empty():
                self._backlog.append(self._queue.get_nowait())
        self._queue = None

    async def __aenter__(self) -> WebhookEmitter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def wait_idle(self, timeout: float | None = None) -> bool:
        """True once nothing is pending (delivered or given up); False if ``timeout`` passes first."""
        if self._pending == 0:
            return True
        if self._held:
            self._flush_held()
        if self._idle is None:
            return False
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True

    # --- intake ------------------------------------------------------------------------------

    def publish(self, notifications: list[Notification]) -> None:
        """Queue notifications; returns immediately (called from API handlers)."""
        rate, drop = self.settings.duplicate_rate, self.settings.drop_rate
        for notification in notifications:
            if drop > 0 and self._rng.random() < drop:  # lost for good: only a sweep of the gateway finds it
                self.counters["dropped"] += 1
                self.dropped.append({"webhookId": notification.webhook_id, "eventType": notification.event_type,
                                     "dataId": notification.data_id, "at": self._clock()})
                self._dropped.append(notification)
                continue
            copies = 2 if rate > 0 and self._rng.random() < rate else 1
            self.counters["duplicates"] += copies - 1
            for _ in range(copies):
                self._pending += 1
                self.counters["emitted"] += 1
                self._admit(_Delivery(notification))
        if self._pending and self._idle is not None:
            self._idle.clear()

    def release_dropped(self) -> int:
        """Deliver every dropped notification after all (a very late webhook); returns how many."""
        released, self._dropped = self._dropped, []
        for notification in released:
            self._pending += 1
            self.counters["emitted"] += 1
            self._admit(_Delivery(notification))
        if self._pending and self._idle is not None:
            self._idle.clear()
        return len(released)

    def _admit(self, delivery: _Delivery) -> None:
        window = self.settings.reorder_window
        if window <= 1:
            self._dispatch(delivery)
            return
        self._held.append(delivery)
        if len(self._held) >= window:
            self._flush_held()
        elif self._flush_handle is None and self._queue is not None:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        loop = asyncio.get_running_loop()
        self._flush_handle = loop.call_later(self.settings.reorder_flush_ms / 1000, self._flush_held)

    def _flush_held(self) -> None:
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        batch, self._held = self._held, []
        self._rng.shuffle(batch)
        for delivery in batch:
            self._dispatch(delivery)

    def _dispatch(self, delivery: _Delivery, delay: float | None = None) -> None:
        if delay is None:
            low, high = self.settings.delay_ms
            delay = self._rng.uniform(low, high) / 1000 if high > 0 else 0.0
        if self._queue is None:
            self._backlog.append(delivery)
        elif delay > 0:
            delivery.timer = asyncio.get_running_loop().call_later(delay, self._release, delivery)
            self._timers[delivery.timer] = delivery
        else:
            self._queue.put_nowait(delivery)

    def _release(self, delivery: _Delivery) -> None:
        if delivery.timer is not None:
            self._timers.pop(delivery.timer, None)
            delivery.timer = None
        if self._queue is not None:
            self._queue.put_nowait(delivery)
        else:
            self._backlog.append(delivery)

    # --- delivery ----------------------------------------------------------------------------

    def _own_transport(self) -> httpx.AsyncBaseTransport:
        """One keep-alive connection per worker. httpcore's pool scans every connection on every request,
        so one shared pool of N connections costs O(N) per delivery; N pools of one cost O(1).
        TCP_NODELAY: headers and body go out in separate writes, and Nagle's algorithm meeting the
        receiver's delayed ACK would stall deliveries. One TLS context serves all workers (building one
        loads the CA bundle, ~20 ms)."""
        if self._tls is None:
            self._tls = httpx.create_ssl_context()
        return httpx.AsyncHTTPTransport(
            verify=self._tls, limits=httpx.Limits(max_connections=1, max_keepalive_connections=1), retries=0,
            socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
        )

    async def _work(self) -> None:
        assert self._queue is not None
        queue = self._queue
        transport = self._given_transport or self._own_transport()
        try:
            while True:
                delivery = await queue.get()
                try:
                    await self._attempt(transport, delivery)
                except asyncio.CancelledError:
                    self._backlog.append(delivery)
                    raise
        finally:
            if transport is not self._given_transport:
                await transport.aclose()

    def _request(self, delivery: _Delivery) -> httpx.Request:
        n = delivery.notification
        retry = delivery.retry_number
        request_type = "RETRY" if retry else "NEW"
        trace_id = str(uuid.uuid4())
        head = orjson.dumps({
            "webhookId": n.webhook_id, "transactionTraceId": trace_id, "productId": n.product_id,
            "organizationId": n.organization_id, "eventType": n.event_type, "eventDate": n.event_date,
            "requestType": request_type, "retryNumber": retry,
            **({"notificationId": n.notification_id} if n.notification_id else {}),
        })
        body = head[:-1] + b',"payload":' + n.payload_json + b"}"
        signature = sign_notification(body, key=n.key, key_id=n.key_id, timestamp_ms=int(self._clock() * 1000),
                                      variant=self.settings.signature_variant, payload_json=n.payload_json)
        url = self._urls.get(n.url)
        if url is None:
            url = self._urls[n.url] = httpx.URL(n.url)
        timeout = self.settings.timeout_seconds
        return httpx.Request("POST", url, content=body, headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "v-c-signature": signature,
            "v-c-event-type": n.event_type,
            "v-c-organization-id": n.organization_id,
            "v-c-product-name": n.product_id,
            "v-c-request-type": request_type,
            "v-c-retry-count": str(retry),
            "v-c-transaction-trace-id": trace_id,
            "v-c-webhook-id": n.webhook_id,
        }, extensions={"timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}})

    async def _attempt(self, transport: httpx.AsyncBaseTransport, delivery: _Delivery) -> None:
        request = self._request(delivery)
        self.counters["attempts"] += 1
        status: int | None = None
        error = None
        try:
            response = await transport.handle_async_request(request)
            try:
                await response.aread()
            finally:
                await response.aclose()
            status = response.status_code
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a refused connection, a timeout, or an in-process receiver that crashed
            error = f"{type(exc).__name__}: {exc}"
        if status is not None and 200 <= status < 300:
            self.counters["delivered"] += 1
            self._record(delivery, request, status, None)
            self._done()
            return
        self.counters["failed_attempts"] += 1
        delivery.retry_number += 1
        if self._backoff.exhausted(delivery.retry_number):
            self.counters["failed"] += 1
            log.warning("webhook %s to %s failed after %d attempts (last: %s)", delivery.notification.event_type,
                        delivery.notification.url, delivery.retry_number, error or status)
            self._record(delivery, request, status, error)
            self._done()
            return
        self._dispatch(delivery, self._backoff.delay(delivery.retry_number, rng=self._rng))

    def _record(self, delivery: _Delivery, request: httpx.Request, status: int | None, error: str | None) -> None:
        n = delivery.notification
        self.log.append({
            "webhookId": n.webhook_id, "eventType": n.event_type, "productId": n.product_id, "dataId": n.data_id,
            "transactionTraceId": request.headers["v-c-transaction-trace-id"],
            "requestType": request.headers["v-c-request-type"], "retryNumber": int(request.headers["v-c-retry-count"]),
            "url": n.url, "status": status, "error": error, "delivered": error is None and status is not None
            and 200 <= status < 300, "at": self._clock(),
        })

    def _done(self) -> None:
        self._pending -= 1
        if self._pending == 0 and self._idle is not None:
            self._idle.set()

