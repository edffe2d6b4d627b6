"""Micro-batching: many concurrent single-item calls become one request.

Flows are written one event at a time (``await back_office.create_sales_order(o)``),
but hundreds run concurrently. A connector puts a ``MicroBatcher`` behind such a
call: every item submitted in the same event-loop turn (or within ``max_delay``)
goes out in one batch request, and each caller gets its own result or its own
exception. This is what lets a per-event flow reach thousands of ERP writes per
second without a per-event HTTP round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

BatchFn = Callable[[Sequence[T]], Awaitable[Sequence[R | BaseException]]]


class MicroBatcher(Generic[T, R]):
    """At most ``max_in_flight`` batches run at once. A batch is cut when a sender is free to send it, not
    when its items arrived: calls made while every sender is busy wait together and go out as one batch
    (up to ``max_batch``) as soon as one is free. Cutting at arrival instead sent a queue of one-item
    batches one after another under load, which is when batching matters most."""

    def __init__(
        self,
        run_batch: BatchFn[T, R],
        *,
        max_batch: int = 250,
        max_delay: float = 0.0,
        max_in_flight: int = 4,
    ) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._max_in_flight = max_in_flight
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._scheduled: asyncio.Handle | asyncio.TimerHandle | None = None
        self._senders = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif self._scheduled is None:
            if self._max_delay > 0:
                self._scheduled = loop.call_later(self._max_delay, self._flush)
            else:
                self._scheduled = loop.call_soon(self._flush)
        return await future

    def _flush(self) -> None:
        if self._scheduled is not None:
            self._scheduled.cancel()
            self._scheduled = None
        while self._pending and self._senders < self._max_in_flight:
            self._senders += 1
            task = asyncio.get_running_loop().create_task(self._sender(self._take()))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take(self) -> list[tuple[T, asyncio.Future[R]]]:
        batch, self._pending = self._pending[: self._max_batch], self._pending[self._max_batch :]
        return batch

    async def _sender(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        """Send ``batch``, then whatever waited meanwhile, until nothing waits."""
        try:
            while batch:
                await self._send(batch)
                batch = self._take()
        finally:
            self._senders -= 1
            if self._pending and self._scheduled is None:  # cancelled with calls waiting: another sender
                self._scheduled = asyncio.get_running_loop().call_soon(self._flush)

    async def _send(self, batch: list[tuple[T, asyncio.Future[R]]]) -> None:
        try:
            results = await self._run_batch([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"batch returned {len(results)} results for {len(batch)} items")
        except BaseException as exc:  # the whole request failed: every caller gets the error
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
