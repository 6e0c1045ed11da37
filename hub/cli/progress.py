"""The progress of long commands, on standard error; standard output stays the command's result.

Every long command (the imports, ``feeds sync``, ``retention run``, ``sharing apply``, ``backup``,
``restore``) hands a :class:`Progress` to the operation as its ``hub.progress.Report``.

On a terminal it is a live display (rich): one line per phase with a bar, the count, the unit and
the time elapsed. Anywhere else (a pipe, a file, docker or Kubernetes logs) it is one JSON object a
line::

    {"progress": "import", "phase": "store", "done": 12000, "total": 50000, "unit": "objects", "elapsed_s": 1.2}

The first record comes as soon as the operation reports anything, later ones at most once a second,
and every phase ends with a record of its final count carrying ``"finished": true`` (``"failed": true``
when the command fails in that phase). ``total`` is null when it is not known in advance;
``elapsed_s`` counts from the start of the command. ``cti-hub --quiet`` shows none of it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TextIO

import click
import orjson
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.progress import Progress as Display

INTERVAL_S = 1.0  # between JSON records
REDRAW_S = 0.25  # between redraws of the terminal display: each costs about 2 ms of CPU (rich)


@dataclass
class _Phase:
    name: str
    unit: str
    done: int = 0
    total: int | None = None
    task: TaskID | None = None


class Progress:
    """One command's progress reporter: a live display on a terminal, JSON lines otherwise."""

    def __init__(
        self,
        operation: str,
        *,
        stream: TextIO | None = None,
        terminal: bool | None = None,
        enabled: bool = True,
        interval: float = INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.operation, self.enabled, self.interval, self._clock = operation, enabled, interval, clock
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = _isatty(self.stream) if terminal is None else terminal
        self._started = clock()
        self._phase: _Phase | None = None
        self._last: float | None = None  # when the last record was written or the display redrawn
        self._display: Display | None = None

    def __call__(self, phase: str, done: int, total: int | None = None, *, unit: str = "") -> None:
        if not self.enabled:
            return
        current = self._phase
        if current is None or current.name != phase:
            if current is not None:
                self._end(current, "finished")
            current = self._phase = _Phase(phase, unit)
            if self.terminal:
                current.task = self._screen().add_task(f"{self.operation}: {phase}", total=total, unit=unit)
        current.done, current.total = done, total
        now = self._clock()
        if self._last is not None and now - self._last < (REDRAW_S if self.terminal else self.interval):
            return
        self._last = now
        if self.terminal:
            self._draw(current)
        else:
            self._write(current)

    def close(self, *, failed: bool = False) -> None:
        """End the current phase with its final record (or final drawing) and stop the display."""
        if self._phase is not None:
            self._end(self._phase, "failed" if failed else "finished")
            self._phase = None
        if self._display is not None:
            self._display.stop()
            self._display = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close(failed=kind is not None and not issubclass(kind, click.exceptions.Exit))

    # -- output

    def _end(self, phase: _Phase, how: str) -> None:
        if self.terminal:
            if how == "finished" and phase.total is None:
                phase.total = phase.done  # the bar of a phase of unknown size fills when it ends
            self._draw(phase)
        else:
            self._write(phase, {how: True})

    def _write(self, phase: _Phase, extra: dict[str, Any] | None = None) -> None:
        record = {
            "progress": self.operation,
            "phase": phase.name,
            "done": phase.done,
            "total": phase.total,
            "unit": phase.unit,
            "elapsed_s": round(self._clock() - self._started, 2),
            **(extra or {}),
        }
        self.stream.write(orjson.dumps(record).decode() + "\n")
        self.stream.flush()

    def _screen(self) -> Display:
        if self._display is None:
            console = Console(file=self.stream, force_terminal=True)
            self._display = Display(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[unit]}"),
                TimeElapsedColumn(),
                console=console,
                auto_refresh=False,  # no refresh thread: an import forks its validator only while single-threaded
                redirect_stdout=_isatty(sys.stdout),  # a line printed meanwhile goes above the display
                redirect_stderr=self.stream is sys.stderr,
            )
            self._display.start()
        return self._display

    def _draw(self, phase: _Phase) -> None:
        assert phase.task is not None
        display = self._screen()
        display.update(phase.task, completed=phase.done, total=phase.total)
        display.refresh()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def reporter(ctx: click.Context, operation: str) -> Progress:
    """Return this command's progress reporter on standard error; silent under ``cti-hub --quiet``."""
    return Progress(operation, enabled=not ctx.find_root().params.get("quiet", False))
