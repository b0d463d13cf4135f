"""A lock that many threads share or one thread holds alone: searches share the loaded FAISS index, a
sync applying its delta to it in place holds it alone."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator


class SharedLock:
    """Held by any number of sharers at once, or by one thread alone.

    A thread waiting to hold it alone goes before sharers that arrive after it, so a stream of
    searches cannot keep a sync waiting. Not reentrant: a sharer must not ask to hold it alone.
    """

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._sharers = 0
        self._held_alone = False
        self._waiting_alone = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._held_alone and not self._waiting_alone)
            self._sharers += 1
        try:
            yield
        finally:
            with self._condition:
                self._sharers -= 1
                self._condition.notify_all()

    @contextlib.contextmanager
    def alone(self) -> Iterator[None]:
        with self._condition:
            self._waiting_alone += 1
            self._condition.wait_for(lambda: not self._held_alone and not self._sharers)
            self._waiting_alone -= 1
            self._held_alone = True
        try:
            yield
        finally:
            with self._condition:
                self._held_alone = False
                self._condition.notify_all()
