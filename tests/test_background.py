"""The background sync: syncs on request, and picks up files dropped into or removed from the folder."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from qa import Library, Settings
from qa.background import BackgroundSync, folder_signature
from qa.embed import Embedder
from qa.store import Store, faiss_deltas

BRIDGE = "Harbour bridge in Bergen reopens\nThe rebuilt harbour bridge in Bergen reopened to cyclists on Friday.\n"


def eventually(condition: Callable[[], bool], seconds: float = 30.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return False


@pytest.fixture
def library(tmp_path: Path, embedder: Embedder) -> Iterator[Library]:
    """Two one-paragraph articles: cheap to index."""
    folder = tmp_path / "articles"
    folder.mkdir()
    (folder / "ecb-rates.md").write_text("# ECB holds interest rates at 2.5% as inflation cools\n\nRates stay.\n")
    (folder / "rail.txt").write_text("Rail strike halts trains\nDutch rail workers walked out on Monday.\n")
    lib = Library(Settings(articles_dir=folder, index_dir=tmp_path / "index"), embedder=embedder)
    yield lib
    lib.store.close()


@pytest.fixture
def watched(library: Library) -> Iterator[BackgroundSync]:
    library.sync()
    background = BackgroundSync(library, interval=0.2).start(synced=True)
    yield background
    background.stop()


def titles(library: Library) -> set[str]:
    return {title for _, title, _ in library.store.article_list()}


def test_a_file_dropped_into_the_folder_is_indexed_without_a_restart(watched: BackgroundSync) -> None:
    library = watched.library
    (library.settings.articles_dir / "bridge.txt").write_text(BRIDGE)
    assert eventually(lambda: watched.state.finished == 1)
    assert watched.state.report is not None and watched.state.report.added == 1
    assert "Harbour bridge in Bergen reopens" in titles(library)
    assert library.retrieve("Bergen harbour bridge cyclists", 1)[0].citation.source == "bridge.txt"


def test_a_file_removed_from_the_folder_leaves_the_index(watched: BackgroundSync) -> None:
    library = watched.library
    (library.settings.articles_dir / "ecb-rates.md").unlink()
    assert eventually(lambda: "ECB holds interest rates at 2.5% as inflation cools" not in titles(library))


def test_an_unchanged_folder_is_not_synced_again(watched: BackgroundSync) -> None:
    time.sleep(1.0)
    assert watched.state.finished == 0


def test_a_requested_sync_can_be_waited_for(library: Library) -> None:
    background = BackgroundSync(library, interval=None).start(synced=False)
    try:
        (library.settings.articles_dir / "bridge.txt").write_text(BRIDGE)
        assert background.wait(background.request(), timeout=60)
        assert "Harbour bridge in Bergen reopens" in titles(library) and background.state.error is None
    finally:
        background.stop()


def test_after_a_sync_the_worker_merges_the_faiss_delta_files(
    library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faiss_deltas, "DELTA_SHARE", 1.0)  # the sync itself writes a delta file
    library.sync()
    base = library.store.manifest()["faiss"]
    background = BackgroundSync(library, interval=None).start(synced=True)
    try:
        (library.settings.articles_dir / "bridge.txt").write_text(BRIDGE)
        assert background.wait(background.request(), timeout=60)
        assert eventually(lambda: library.store.manifest()["faiss"] != base), "a new base file"
        assert library.store.manifest()["faiss_deltas"] == [] and library.store.check() == []
        assert library.retrieve("Bergen harbour bridge cyclists", 1)[0].citation.source == "bridge.txt"
    finally:
        background.stop()


def test_the_folder_signature_sees_articles_only(library: Library) -> None:
    folder = library.settings.articles_dir
    before = folder_signature(folder)
    (folder / ".upload-123.part").write_text("half written")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8")
    assert folder_signature(folder) == before
    (folder / "bridge.txt").write_text(BRIDGE)
    assert folder_signature(folder) != before


def test_while_another_process_writes_the_index_the_watch_says_so_and_retries(watched: BackgroundSync) -> None:
    library = watched.library
    with Store(library.settings.index_dir).writing():  # what another process's build holds
        (library.settings.articles_dir / "bridge.txt").write_text(BRIDGE)
        assert eventually(lambda: watched.state.error is not None)
        assert "is being updated by" in watched.state.error
    assert eventually(lambda: "Harbour bridge in Bergen reopens" in titles(library))
    assert eventually(lambda: watched.state.error is None)
