"""What a sync changes: after a first full comparison, a long-lived library compares only the files
that were read again or are gone, and finds exactly what comparing everything would."""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qa.articles
from qa import Library
from qa.articles import SETTLED_SECONDS, Folder, load_folder
from qa.changes import Changes, Indexed, full_changes, quick_changes
from qa.schema import Article
from qa.store import faiss_deltas

ARTICLE = "Harbour reopens after storm\n\nThe harbour at Dunmore reopened on Friday after storm repairs.\n"

BODIES = ["Rates rose.", "Rates fell.", "The harbour reopened.", "A storm closed the port."]
# a folder: file -> its articles, each (id within the file, title, body)
FOLDERS = st.dictionaries(
    st.sampled_from(["a.jsonl", "b.jsonl", "c.txt", "d/e.jsonl"]),
    st.lists(st.tuples(st.sampled_from("1234"), st.sampled_from(["T", "U"]), st.sampled_from(BODIES)),
             max_size=3, unique_by=lambda article: article[0]),
    max_size=4,
)


def folder_of(files: dict[str, list[tuple[str, str, str]]], read: set[str]) -> Folder:
    """The Folder `load_folder` would give, files in `read` read from disk and the others cached."""
    articles = {name: [Article(f"{name}#{own}", title, body, name) for own, title, body in found]
                for name, found in sorted(files.items())}
    everything = [article for found in articles.values() for article in found]
    fresh = [article for name in sorted(read) for article in articles.get(name, [])]
    return Folder(everything, [], sorted(files), sorted(read & files.keys()), fresh)


def as_sets(changes: Changes) -> tuple[set[str], ...]:
    return ({a.article_id for a in changes.added}, {a.article_id for a in changes.updated}, set(changes.removed),
            set(changes.new_bodies), set(changes.old_bodies))


@settings(max_examples=300, deadline=None)
@given(before=FOLDERS, after=FOLDERS)
def test_comparing_the_files_read_again_finds_what_comparing_everything_finds(
    before: dict[str, list[tuple[str, str, str]]], after: dict[str, list[tuple[str, str, str]]]
) -> None:
    known = Indexed()
    known.reset({"generation": 1}, folder_of(before, set()).articles)
    changed = {name for name in after if after[name] != before.get(name)}
    folder = folder_of(after, changed)
    indexed = {key: (record, body) for key, (record, body, _) in known.articles.items()}

    quick = quick_changes(folder, known)
    assert quick is not None
    assert as_sets(quick) == as_sets(full_changes(folder.articles, indexed, set(known.bodies)))

    known.apply(folder, quick, {"generation": 2})
    fresh = Indexed()
    fresh.reset({"generation": 2}, folder.articles)
    assert (known.articles, known.bodies) == (fresh.articles, fresh.bodies)
    assert {name: sorted(ids) for name, ids in known.files.items()} == {
        name: sorted(ids) for name, ids in fresh.files.items()
    }


def test_a_long_lived_library_compares_only_what_was_read_again(
    faiss_library: Library, articles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faiss_library.sync()

    def read_everything() -> None:
        raise AssertionError("a small change should not read every indexed article")

    monkeypatch.setattr(faiss_library.store, "article_hashes", read_everything)
    (articles / "harbour.txt").write_text(ARTICLE)
    assert faiss_library.sync().summary().startswith("1 added, 0 updated, 0 removed, 6 unchanged")
    (articles / "harbour.txt").write_text(ARTICLE.replace("Friday", "Saturday"))
    assert faiss_library.sync().summary().startswith("0 added, 1 updated, 0 removed, 6 unchanged")
    (articles / "harbour.txt").unlink()
    assert faiss_library.sync().summary().startswith("0 added, 0 updated, 1 removed, 6 unchanged")
    monkeypatch.undo()
    assert not full_changes(load_folder(articles).articles, faiss_library.store.article_hashes(),
                            faiss_library.store.body_hashes())


def test_an_index_written_by_another_library_is_compared_in_full(
    faiss_library: Library, articles: Path
) -> None:
    faiss_library.sync()
    other = Library(faiss_library.settings, embedder=faiss_library.embedder)
    (articles / "harbour.txt").write_text(ARTICLE)
    assert other.sync().added == 1
    other.store.close()
    (articles / "harbour.txt").unlink()  # the first library's file cache never saw it
    report = faiss_library.sync()
    assert (report.added, report.removed, report.unchanged) == (0, 1, 6)
    assert not full_changes(load_folder(articles).articles, faiss_library.store.article_hashes(),
                            faiss_library.store.body_hashes())


def test_a_sync_that_failed_after_reading_the_folder_is_followed_by_a_full_comparison(
    faiss_library: Library, articles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    faiss_library.sync()
    (articles / "harbour.txt").write_text(ARTICLE)
    time.sleep(SETTLED_SECONDS + 0.1)  # settled: the failed sync's file cache keeps it, and will not read it again

    def fail(change: object) -> None:
        raise OSError("disk full")

    with monkeypatch.context() as patched:
        patched.setattr(faiss_library.store, "apply", fail)
        with pytest.raises(OSError):
            faiss_library.sync()
    assert faiss_library.indexed.version is None
    assert faiss_library.sync().added == 1


def test_bodies_the_file_cache_dropped_are_read_again_when_the_index_lost_them(
    faiss_library: Library, articles: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(qa.articles, "SETTLED_SECONDS", 0.0)  # cache every file at once
    time.sleep(0.05)  # a clock tick past the fixture's writes
    faiss_library.sync()
    fewer = tmp_path / "fewer"
    shutil.copytree(articles, fewer)
    (fewer / "ecb-rates.md").unlink()
    other = Library(replace(faiss_library.settings, articles_dir=fewer), embedder=faiss_library.embedder)
    assert other.sync().removed == 1  # the index lost the article, which the first library's cache holds bodiless
    other.store.close()
    report = faiss_library.sync()
    assert (report.added, report.passages_added) == (1, report.passages_embedded + report.passages_cached) != (1, 0)
    assert any("2.5% on Thursday" in hit.text for hit in faiss_library.retrieve("ECB deposit rate", k=3))


def test_a_merge_of_the_faiss_delta_files_keeps_the_next_sync_quick(
    faiss_library: Library, articles: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(faiss_deltas, "DELTA_SHARE", 1.0)  # the sync writes a delta file; the library merges it
    faiss_library.sync()
    (articles / "harbour.txt").write_text(ARTICLE)
    faiss_library.sync()
    assert faiss_library.merge_deltas() and not faiss_library.store.manifest()["faiss_deltas"]

    def read_everything() -> None:
        raise AssertionError("a merge changes no article: the next sync should compare only what changed")

    monkeypatch.setattr(faiss_library.store, "article_hashes", read_everything)
    (articles / "harbour.txt").unlink()
    assert faiss_library.sync().summary().startswith("0 added, 0 updated, 1 removed, 6 unchanged")
