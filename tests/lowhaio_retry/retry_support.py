"""What the retry tests share: fake time, and `retry` set up with it."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from lowhaio import Request
from lowhaio_retry import retry

NOW = 1_700_000_000.0  # what the fake wall clock says


class FakeTime:
    """Injectable `sleep` and `clock`: a sleep records its delay, advances the clock, runs the
    action given for its number (from 1), and returns at once."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.delays: list[float] = []
        self.actions: dict[int, Callable[[], Awaitable[object]]] = {}

    async def sleep(self, delay: float) -> None:
        self.delays.append(delay)
        self.now += delay
        action = self.actions.get(len(self.delays))
        if action is not None:
            await action()

    def clock(self) -> float:
        return self.now


def retrying(request: Request, fake: FakeTime, **policy: Any) -> Request:
    """`retry` with fake time, a fixed wall clock and a jitter of 0.5 unless `policy` says."""
    fixed: dict[str, Any] = {
        "sleep": fake.sleep,
        "clock": fake.clock,
        "wall_clock": lambda: NOW,
        "jitter": lambda: 0.5,
    }
    return retry(request, **{**fixed, **policy})
