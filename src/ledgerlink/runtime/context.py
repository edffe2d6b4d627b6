"""The runtime's side of ``FlowContext``: state, the step journal and counters for one event attempt."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ledgerlink.flows.context import OutboundEvent

log = logging.getLogger(__name__)

EFFECTS = "effects"  # the key under which the step journal lives in partition state


class EventContext:
    """Handed to a flow for one attempt at one event; what it gathers is committed with the event."""

    def __init__(
        self,
        *,
        state: dict[str, Any],
        attempt: int,
        recovering: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.state = state
        self.attempt = attempt
        self.recovering = recovering
        self._clock = clock
        self.tags: dict[str, int] = {}
        self.outcome_word: str | None = None
        self.emitted: list[OutboundEvent] = []

    def now(self) -> float:
        return self._clock()

    async def once(
        self,
        key: str,
        create: Callable[[], Awaitable[str]],
        find: Callable[[], Awaitable[str | None]] | None = None,
        *,
        tag: str | None = None,
    ) -> str:
        journal: dict[str, str] = self.state.setdefault(EFFECTS, {})
        done = journal.get(key)
        if done is not None:
            return done
        if self.recovering and find is not None:
            found = await find()
            if found is not None:
                log.info("effect %s already in the target (%s); not creating it again", key, found)
                journal[key] = found
                self.count("effects.recovered")
                if tag:  # the attempt that created it never committed, so it was never counted
                    self.count(tag)
                return found
        value = await create()
        journal[key] = value
        if tag:
            self.count(tag)
        return value

    def emit(self, event: OutboundEvent) -> None:
        self.emitted.append(event)

    def count(self, tag: str, amount: int = 1) -> None:
        self.tags[tag] = self.tags.get(tag, 0) + amount

    def outcome(self, outcome: str) -> None:
        self.outcome_word = outcome[:64]  # ll_inbox.outcome is VARCHAR(64)
