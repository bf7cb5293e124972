"""Hedged attempts: copies of one request racing in one nursery."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import trio

from .._budget import RetryBudget
from ._config import HedgingConfig

Send = Callable[[httpx.Request, bool], Awaitable[httpx.Response]]
"""Sends one copy; the flag says whether it may wait for a bulkhead slot."""


async def race(
    send: Send,
    request: httpx.Request,
    copy: Callable[[], httpx.Request],
    hedging: HedgingConfig,
    budget: RetryBudget | None,
    on_hedge: Callable[[], object] | None = None,
) -> httpx.Response:
    """``request``, raced against up to ``max_extra`` copies (``copy()``), each
    started ``delay`` after the last while none has answered and one is still
    running: the first success wins and the others are cancelled; if every one
    fails, the first's error is raised. A copy is a retry to ``budget`` and may
    not wait for a bulkhead slot."""
    won: list[httpx.Response] = []
    first_error: list[Exception] = []
    running = 0
    all_failed = trio.Event()

    async def one(request: httpx.Request, first: bool) -> None:
        nonlocal running
        try:
            response = await send(request, first)
        except Exception as exc:  # a copy's failure, raised if all fail
            if first:
                first_error.append(exc)
            running -= 1
            if running == 0:
                all_failed.set()
            return
        if won:  # answered in the same instant as the winner
            await response.aclose()
            return
        won.append(response)
        nursery.cancel_scope.cancel()

    async with trio.open_nursery() as nursery:
        running = 1
        nursery.start_soon(one, request, True)
        for _ in range(hedging.max_extra):
            with trio.move_on_after(hedging.delay):
                await all_failed.wait()
            if all_failed.is_set():
                break
            if budget is not None and not budget.try_withdraw():
                break
            running += 1
            if on_hedge is not None:
                on_hedge()
            nursery.start_soon(one, copy(), False)
    if won:
        return won[0]
    raise first_error[0]
