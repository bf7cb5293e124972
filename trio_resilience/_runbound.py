"""Binding a primitive's time state to one `trio.run` (DESIGN.md, "Lifecycle rules").

A trio time means something only on the clock of the run that read it (each run's
clock starts at its own offset; a `trio.testing.MockClock` starts at 0), and trio
objects that hold tasks (locks, limiters, wait queues) belong to the run of those
tasks. A primitive that keeps either remembers the run it was last used in and, on
its first use in another run, starts over as if it were new. This is what makes a
module-level breaker or bucket safe under pytest-trio, which starts a run per test.

The run is identified by its `trio.lowlevel.TrioToken` (one per call of `trio.run`),
so the check on every operation is one call and one identity comparison::

    if current_run() is not self._run:
        self._enter_run()

Outside any run nothing is reset: an object observed between runs (its
``statistics()``, say) shows the state its last run left. An object serves one run at
a time; like any trio object it is not meant to be shared by runs in two threads.
"""

from __future__ import annotations

from trio.lowlevel import TrioToken, current_trio_token


def current_run() -> TrioToken | None:
    """The token of the `trio.run` this is called from, or None outside a run."""
    try:
        return current_trio_token()
    except RuntimeError:
        return None


class RunBound:
    """Mixin for objects whose state belongs to the run that last used them.

    Subclasses set ``self._run = None`` when they are made, start each operation that
    touches their run-bound state with the check shown in the module docstring, and
    implement `_start_run` to put that state back as it is in a new object.
    """

    __slots__ = ("_run",)

    _run: TrioToken | None

    def _enter_run(self) -> None:
        """Bind to the current run, resetting the run-bound state if it changed."""
        run = current_run()
        if run is not None and run is not self._run:
            self._run = run
            self._start_run()

    def _start_run(self) -> None:
        raise NotImplementedError
