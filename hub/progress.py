"""How long operations report their progress: the callback they are given, and the one that says nothing.

An operation (an import, a retention run, ``sharing apply``, a backup) calls its ``Report`` with the
phase it is in, how many units of the phase are done so far (a running count, not an increment) and
the phase's total when it is known. Moving to another phase name ends the previous phase. The callback
decides what to show and how often (``hub.cli.progress`` renders it on standard error), so an
operation may call it as often as once per item. Nothing here does I/O.
"""

from __future__ import annotations

from typing import Protocol


class Report(Protocol):
    """The progress callback of a long operation."""

    def __call__(self, phase: str, done: int, total: int | None = None, *, unit: str = "") -> None: ...


def silent(phase: str, done: int, total: int | None = None, *, unit: str = "") -> None:
    """Report nothing: the default of every operation run without a reporter."""
