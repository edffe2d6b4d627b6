"""Micro-batching (``connectors/kit/batching.py``): calls that wait together go out together, each caller
gets its own result or error, and a failed batch fails only its own callers."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from ledgerlink.connectors.kit.batching import MicroBatcher


class Recorder:
    def __init__(self, delay: float = 0.01) -> None:
        self.batches: list[list[int]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.delay = delay

    async def __call__(self, items: Sequence[int]) -> list[int | BaseException]:
        self.batches.append(list(items))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(self.delay)
        self.in_flight -= 1
        if -1 in items:
            raise ConnectionError("the whole request failed")
        return [ValueError(f"refused {i}") if i < 0 else i * 10 for i in items]


async def test_calls_of_one_turn_share_a_batch_and_each_gets_its_result() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=100)
    assert await asyncio.gather(*(batcher.submit(i) for i in range(10))) == [i * 10 for i in range(10)]
    assert run.batches == [list(range(10))]


async def test_calls_made_while_every_sender_is_busy_wait_together_and_go_as_one_batch() -> None:
    run = Recorder(delay=0.05)
    batcher = MicroBatcher(run, max_batch=1000, max_in_flight=2)

    async def trickle(start: int) -> list[int]:
        calls = []
        for i in range(start, start + 30):  # one call per turn of the loop, for a while
            calls.append(asyncio.ensure_future(batcher.submit(i)))
            await asyncio.sleep(0.005)
        return list(await asyncio.gather(*calls))

    assert await trickle(0) == [i * 10 for i in range(30)]
    assert run.most_in_flight <= 2
    assert sorted(i for batch in run.batches for i in batch) == list(range(30))
    assert len(run.batches) < 10, run.batches  # not one batch per call


async def test_max_batch_splits_and_errors_stay_with_their_callers() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_batch=4, max_in_flight=1)
    results = await asyncio.gather(*(batcher.submit(i) for i in (1, 2, -3, 4, 5, -1, 7)), return_exceptions=True)
    assert [len(b) for b in run.batches] == [4, 3]
    assert results[:2] == [10, 20] and isinstance(results[2], ValueError) and results[3] == 40
    assert all(isinstance(r, ConnectionError) for r in results[4:])  # the batch with -1 failed as a whole
    assert await batcher.submit(8) == 80  # and the batcher goes on


async def test_a_cancelled_caller_does_not_stall_the_others() -> None:
    run = Recorder(delay=0.05)
    batcher = MicroBatcher(run, max_batch=10, max_in_flight=1)
    first = asyncio.ensure_future(batcher.submit(1))
    await asyncio.sleep(0.01)
    waiting = [asyncio.ensure_future(batcher.submit(i)) for i in (2, 3)]
    await asyncio.sleep(0)
    waiting[0].cancel()
    assert await first == 10 and await waiting[1] == 30
    with pytest.raises(asyncio.CancelledError):
        await waiting[0]
