"""The FAISS index on disk as a base file plus one small delta file per sync, merged into a new base once
the deltas pass their share of it. Crash safety of both kinds of writes: test_crash.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa import Library, Settings
from qa.embed import Embedder
from qa.store import Store, faiss_deltas
from qa.store.faiss_deltas import Delta, combined

QUESTION = "What did the ECB do with interest rates?"
LAYOUTS = ("flat", "IVF4,Flat nprobe=2")  # exact, and an IVF index probing half of its lists


def new_article(articles: Path, name: str, topic: str) -> None:
    (articles / name).write_text(
        f"{topic.title()} report\n\nThe council met on Monday to discuss the {topic}. Members agreed to "
        f"publish a plan for the {topic} before the summer, and to hold a public meeting about it in May."
    )


def with_one_delta(articles: Path, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch) -> Library:
    """A library whose index is a base file and one delta file (one article added after the first sync)."""
    monkeypatch.setattr(faiss_deltas, "DELTA_SHARE", 1.0)
    library = Library(Settings(articles, tmp_path / "index"), embedder=embedder)
    library.sync()
    new_article(articles, "harbour.txt", "harbour wall")
    library.sync()
    return library


def faiss_files(library: Library) -> list[str]:
    return sorted(path.name for path in library.settings.index_dir.glob("vectors-*"))


def test_deltas_combine_in_order_removals_before_additions() -> None:
    vector = {row: np.full((1, 2), row, np.float32) for row in range(1, 8)}
    first = Delta.of([1, 2], [5, 6], np.vstack([vector[5], vector[6]]), 2)
    second = Delta.of([5, 3], [2, 7], np.vstack([vector[2], vector[7]]), 2)
    joined = combined([first, second], 2)
    assert joined.removed.tolist() == [1, 2, 3], "base rows removed, a row added then removed is not"
    assert joined.rows.tolist() == [6, 2, 7], "additions in the order they were made; row 2 came back"
    assert np.array_equal(joined.vectors, np.vstack([vector[6], vector[2], vector[7]]))
    with pytest.raises(ValueError, match="2 new rows with 1 vectors"):
        Delta.of([], [1, 2], vector[1], 2)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_small_sync_writes_only_a_delta_and_every_reader_gets_the_same_results(
    layout: str, articles: Path, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faiss_deltas, "DELTA_SHARE", 1.0)  # the fixture index is small: let deltas pile up
    library = Library(Settings(articles, tmp_path / "index", faiss_index=layout), embedder=embedder)
    library.sync()
    base = library.store.manifest()["faiss"]
    early = Store(library.settings.index_dir, layout)  # a reader in another process, loaded before the syncs
    question = embedder.encode_query(QUESTION)
    early.search(question, 5)
    loaded = early.faiss_index()

    new_article(articles, "harbour.txt", "harbour wall")
    library.sync()
    (articles / "ecb-rates.md").unlink()
    library.sync()
    manifest = library.store.manifest()
    assert manifest["faiss"] == base, "the base file is not written again"
    assert [(entry["added"] > 0, entry["removed"] > 0) for entry in manifest["faiss_deltas"]] == [
        (True, False), (False, True)
    ]
    assert faiss_files(library) == sorted([base, *(entry["file"] for entry in manifest["faiss_deltas"])])
    assert library.store.check() == []

    expected = library.store.search(question, 10)  # the writer's index, updated in memory
    fresh = Store(library.settings.index_dir, layout)  # reads the base and applies the deltas
    assert fresh.search(question, 10) == expected
    assert early.search(question, 10) == expected and early.faiss_index() is loaded, "caught up in place"
    removed = {row for row, _ in expected}
    assert "ecb-rates.md" not in {
        citation.article_id for found in fresh.citations(
            {passage.body_hash for passage in fresh.passages(removed).values()}
        ).values() for citation in found
    }
    for store in (early, fresh):
        store.close()
    library.store.close()


def test_deltas_past_their_share_are_merged_into_a_new_base_and_the_old_files_deleted(
    articles: Path, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faiss_deltas, "DELTA_SHARE", 0.2)
    library = Library(Settings(articles, tmp_path / "index"), embedder=embedder)
    library.sync()
    question = embedder.encode_query("council plan")
    written = []
    for topic in ("harbour wall", "school roof", "rail bridge"):
        new_article(articles, f"{topic.replace(' ', '-')}.txt", topic)
        library.sync()
        manifest = library.store.manifest()
        written.append((manifest["faiss"], len(manifest["faiss_deltas"])))
        assert library.store.check() == []
        assert Store(library.settings.index_dir).search(question, 10) == library.store.search(question, 10)
    (first_base, _), *_ = written
    assert written[0] == (first_base, 1) and written[1] == (first_base, 2), "two small deltas beside the base"
    assert written[2][0] != first_base and written[2][1] == 0, "the third would pass 20% of the base: merged"
    assert faiss_files(library) == [written[2][0]], "the old base and its deltas are deleted"
    library.store.close()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_a_merge_between_syncs_writes_one_base_that_searches_the_same(
    layout: str, articles: Path, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faiss_deltas, "DELTA_SHARE", 1.0)  # the syncs write deltas, never merge themselves
    library = Library(Settings(articles, tmp_path / "index", faiss_index=layout), embedder=embedder)
    library.sync()
    assert not library.merge_deltas(), "no delta yet: nothing to merge"
    new_article(articles, "harbour.txt", "harbour wall")
    library.sync()
    (articles / "ecb-rates.md").unlink()
    library.sync()
    question = embedder.encode_query(QUESTION)
    before, loaded = library.store.search(question, 10), library.store.faiss_index()
    old_files = faiss_files(library)

    assert library.merge_deltas()
    manifest = library.store.manifest()
    assert manifest["faiss_deltas"] == [] and faiss_files(library) == [manifest["faiss"]]
    assert manifest["faiss"] not in old_files, "a new base file; the old base and its deltas are deleted"
    assert library.store.check() == []
    assert library.store.search(question, 10) == before
    assert library.store.faiss_index() is loaded, "the loaded index stays loaded"
    fresh = Store(library.settings.index_dir, layout)
    assert fresh.search(question, 10) == before
    fresh.close()

    new_article(articles, "school.txt", "school roof")
    library.sync()
    assert [entry["added"] > 0 for entry in library.store.manifest()["faiss_deltas"]] == [True], "deltas again"
    library.store.close()


def test_deltas_below_their_merge_share_are_left_alone(
    articles: Path, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = with_one_delta(articles, tmp_path, embedder, monkeypatch)
    files = faiss_files(library)
    assert not library.store.merge_deltas(share=1.0) and faiss_files(library) == files
    assert library.store.merge_deltas(share=0.0)
    library.store.close()


def test_a_damaged_delta_file_fails_the_check_and_is_rebuilt_from_stored_vectors(
    articles: Path, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = with_one_delta(articles, tmp_path, embedder, monkeypatch)
    question = embedder.encode_query("harbour wall plan")
    expected = library.store.search(question, 5)
    [entry] = library.store.manifest()["faiss_deltas"]
    delta = library.settings.index_dir / entry["file"]
    delta.write_bytes(delta.read_bytes()[:-20])
    assert f"{entry['file']} does not match its checksum" in Store(library.settings.index_dir).check()
    fresh = Library(library.settings, embedder=embedder)
    embedded = embedder.texts_embedded
    assert fresh.store.search(question, 5) == expected
    assert fresh.store.damage() and embedder.texts_embedded == embedded, "nothing re-embedded"
    fresh.sync()
    assert fresh.store.check() == [] and fresh.store.manifest()["faiss_deltas"] == []
    library.store.close()
    fresh.store.close()
