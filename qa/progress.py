"""Embedding progress for people: a meter of rate and time left, and a line on a terminal or in a log.

A sync reports `Progress` calls (passages with a vector so far, passages it needs vectors for);
`ProgressMeter` turns them into a rate and an ETA, `ProgressLine` shows them on a stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

Progress = Callable[[int, int], None]  # (passages with a vector so far, passages this sync needs vectors for)


class ProgressMeter:
    """Rate and time left of the embedding in a sync, fed with its `Progress` calls.

    The first call's `done` counts the passages already embedded (by an interrupted build, or the
    same text elsewhere in the index): the rate is that of the passages embedded since.

    Args:
        clock: seconds, monotonic. Defaults to `time.monotonic`.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.already: int | None = None  # passages already embedded at the first call
        self.done = self.total = 0
        self.started = self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = self.clock()
        if self.already is None:
            self.already, self.started = done, now
        self.done, self.total, self.last = done, total, now

    @property
    def finished(self) -> bool:
        return self.already is not None and self.done >= self.total

    @property
    def rate(self) -> float | None:
        """Passages embedded a second since the first call; None until some were."""
        fresh = self.done - (self.already or 0)
        seconds = self.last - self.started
        return fresh / seconds if fresh > 0 and seconds > 0 else None

    @property
    def eta(self) -> float | None:
        """Seconds left at the rate so far; None until there is a rate."""
        rate = self.rate
        return (self.total - self.done) / rate if rate else None

    def line(self) -> str:
        """E.g. "1,280/5,000 passages embedded (26%) · 41.3 passages/s · ETA 1:30"."""
        return describe_progress(self.done, self.total, self.rate, self.eta, self.last - self.started)


def describe_progress(
    done: int, total: int, rate: float | None = None, eta: float | None = None, seconds: float = 0.0
) -> str:
    """Embedding progress in a few words: counts, passages a second and the time left (or taken, when done)."""
    line = f"{done:,}/{total:,} passages embedded" + (f" ({done / total:.0%})" if total else "")
    if rate:
        line += f" · {rate:.1f} passages/s" if rate < 100 else f" · {rate:,.0f} passages/s"
    if done < total and eta is not None:
        line += f" · ETA {clock_time(eta)}"
    elif total and done >= total and seconds > 0:
        line += f" · {clock_time(seconds)} in all"
    return line


def clock_time(seconds: float) -> str:
    """Seconds as m:ss, or h:mm:ss from an hour."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class ProgressLine:
    """Embedding progress on `stream`: passages/s and ETA, and how many passages a resumed build kept.

    On a terminal one line is redrawn (at most every `redraw` seconds); elsewhere (a log, a pipe)
    a line is written after the first chunk, then at most every `every` seconds, then at the end.
    `clock`: monotonic seconds (`time.monotonic` by default).
    """

    def __init__(
        self, stream: TextIO, every: float = 30.0, redraw: float = 0.25, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream
        self.live = stream.isatty()
        self.every = every if not self.live else redraw
        self.meter = ProgressMeter(clock)
        self.shown_at: float | None = None
        self.drawn = False  # a live line is on the screen, without its newline

    def __call__(self, done: int, total: int) -> None:
        first = self.meter.already is None
        self.meter(done, total)
        if first:
            if 0 < done < total:
                self._write(f"resuming: {done:,} of {total:,} passages already embedded")
            self.shown_at = self.meter.last if self.live else None  # elsewhere: a line after the first chunk
            return
        due = self.shown_at is None or self.meter.last - self.shown_at >= self.every
        if due or self.meter.finished:
            self.shown_at = self.meter.last
            self._write(self.meter.line(), live=self.live)

    def close(self) -> None:
        """End a live line (after the last update, or an interruption)."""
        if self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False

    def _write(self, line: str, live: bool = False) -> None:
        if live:
            self.stream.write(f"\r\x1b[2K{line}")
            self.drawn = True
        else:
            self.close()
            self.stream.write(line + "\n")
        self.stream.flush()
