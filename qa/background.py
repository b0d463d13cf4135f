"""Keep the index in step with the articles folder from a background thread, while questions go on.

One worker thread runs `Library.sync()` when asked to (after an upload) and, when watching, every
`interval` seconds if the folder changed: a periodic check of file names, sizes and modification
times (cheap: no file is read), not an OS file watcher. Questions keep using the same library
meanwhile: the store's readers keep the FAISS generation they loaded until the sync commits
the new one, so they are answered from the previous index. After a sync the worker merges the
FAISS index's delta files into a new base once they have grown (`Library.merge_deltas`), so that the
syncs themselves rarely have to.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from .articles import SUFFIXES
from .errors import QAError
from .progress import ProgressMeter

if TYPE_CHECKING:
    from .assistant import Library
    from .schema import SyncReport

logger = logging.getLogger(__name__)
Signature = frozenset[tuple[str, int, int]]


@dataclass(frozen=True)
class SyncState:
    """What the background sync is doing and what it did last."""

    running: bool = False
    done: int = 0  # passages of the running sync with a vector so far (already embedded ones included)
    total: int = 0  # passages the running sync needs vectors for
    rate: float | None = None  # passages embedded a second in the running sync, once known
    eta: float | None = None  # seconds the running sync's embedding has left, once known
    finished: int = 0  # syncs completed (successfully or not) since start
    report: SyncReport | None = None  # of the last successful sync
    error: str | None = None  # of the last sync, when it failed
    finished_at: float | None = None  # time.time() of the last completed sync
    version: int = 0  # changes whenever anything above changes


def folder_signature(folder: Path) -> Signature:
    """(relative path, size, mtime in ns) of every article file the folder reader would read."""
    found: set[tuple[str, int, int]] = set()
    folder = Path(folder)
    for root, folders, files in os.walk(folder):
        folders[:] = [name for name in folders if not name.startswith(".")]
        for name in files:
            if name.startswith(".") or Path(name).suffix.lower() not in SUFFIXES:
                continue
            path = Path(root) / name
            try:
                stat = path.stat()
            except OSError:
                continue  # removed while we looked
            found.add((path.relative_to(folder).as_posix(), stat.st_size, stat.st_mtime_ns))
    return frozenset(found)


class BackgroundSync:
    """Runs `library.sync()` in one background thread, on request and (optionally) on folder changes.

    Args:
        library: the library to keep in sync.
        interval: seconds between folder checks; None to sync only on request.
    """

    def __init__(self, library: Library, interval: float | None = 3.0) -> None:
        self.library = library
        self.interval = interval
        self._state = SyncState()
        self._changed = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._wanted = 0  # the number of completed syncs that satisfies every request so far
        self._seen: Signature | None = None  # the folder as the last successful sync read it
        self._thread: threading.Thread | None = None
        self._meter = ProgressMeter()  # of the running sync

    @property
    def state(self) -> SyncState:
        return self._state

    def start(self, synced: bool = True) -> BackgroundSync:
        """Start the worker. `synced`: the index was just synced, so the folder as it is now is indexed."""
        if synced:
            self._seen = folder_signature(self.library.settings.articles_dir)
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="qa-background-sync", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the worker after the sync it is running, if any."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def request(self) -> int:
        """Ask for a sync that starts after now; returns the ticket to `wait()` for."""
        with self._changed:
            ticket = self._state.finished + (2 if self._state.running else 1)
            self._wanted = max(self._wanted, ticket)
        self._wake.set()
        return ticket

    def wait(self, ticket: int, timeout: float | None = None) -> bool:
        """Block until the sync of `ticket` has completed; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self._state.finished >= ticket, timeout)

    def _work(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                signature = folder_signature(self.library.settings.articles_dir)
            except OSError as error:
                logger.warning("cannot list the articles folder: %s", error)
                continue
            if self._state.finished < self._wanted or (self.interval is not None and signature != self._seen):
                self._run(signature)

    def _run(self, signature: Signature) -> None:
        self._meter = ProgressMeter()
        self._update(running=True, done=0, total=0, rate=None, eta=None)
        started = time.perf_counter()
        try:
            report = self.library.sync(progress=self._progress)
        except Exception as error:  # keep the worker alive whatever happens; the page shows the message
            if isinstance(error, QAError):  # e.g. BusyError: another process is writing the index
                logger.warning("background sync failed: %s", error)
                message = str(error)
            else:
                logger.exception("background sync failed")
                message = f"the sync failed unexpectedly ({type(error).__name__}: {error})"
            self._seen = None  # when watching, the next check tries again
            self._update(running=False, error=message, finished=self._state.finished + 1, finished_at=time.time())
            return
        self._seen = signature
        logger.info("background sync in %.1f s: %s", time.perf_counter() - started, report.summary())
        self._update(running=False, report=report, error=None, finished=self._state.finished + 1,
                     finished_at=time.time())
        try:  # after the sync's waiters are released: questions and uploads do not wait for it
            self.library.merge_deltas()
        except Exception:  # the index stays as the sync left it, whole; the next sync merges if it must
            logger.exception("merging the FAISS delta files failed")

    def _progress(self, done: int, total: int) -> None:
        self._meter(done, total)
        self._update(done=done, total=total, rate=self._meter.rate, eta=self._meter.eta)

    def _update(self, **changes: object) -> None:
        with self._changed:
            self._state = replace(self._state, **changes, version=self._state.version + 1)  # type: ignore[arg-type]
            self._changed.notify_all()
