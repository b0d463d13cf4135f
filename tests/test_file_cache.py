"""A sync reads only the article files that changed since the last one, and never misses an edit."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

import qa.articles
from qa import Library, Settings
from qa.articles import FileCache, load_folder
from qa.embed import Embedder


@pytest.fixture
def settled_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cache files however recently they changed (the real wait is SETTLED_SECONDS), one clock tick later."""
    time.sleep(0.05)  # past the file system's timestamp tick since the fixture files were written
    monkeypatch.setattr(qa.articles, "SETTLED_SECONDS", 0.0)


def test_files_that_just_changed_are_read_again_until_they_settle(articles: Path) -> None:
    cache = FileCache()
    first = load_folder(articles, cache)
    again = load_folder(articles, cache)
    assert again.articles == first.articles and cache.reused == 0 and not cache.entries


def filled_cache(articles: Path) -> FileCache:
    cache = FileCache()
    load_folder(articles, cache)
    assert cache.entries and cache.reused == 0
    return cache


def test_an_edit_that_keeps_size_and_modification_time_is_still_read(articles: Path, settled_at_once: None) -> None:
    path = articles / "venezuela-maduro-us-negotiations.txt"
    cache = filled_cache(articles)
    assert len(load_folder(articles, cache).articles) == len(load_folder(articles).articles)
    assert cache.reused == len(list(articles.glob("*.*")))
    before = path.stat()
    text = path.read_text()
    time.sleep(0.05)  # the edit comes a clock tick after the read
    path.write_text(text.replace("Maduro", "MADURO"))  # same size
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))  # and the modification time put back
    assert path.stat().st_size == before.st_size and path.stat().st_mtime_ns == before.st_mtime_ns
    read = {article.article_id: article for article in load_folder(articles, cache).articles}
    assert "MADURO" in read[path.name].text, "the status-change time moved: the file is read again"


def test_deleted_files_leave_the_cache_and_broken_files_are_reported_every_time(
    articles: Path, settled_at_once: None
) -> None:
    (articles / "broken.json").write_text("{not json")
    cache = filled_cache(articles)
    (articles / "ecb-rates.md").unlink()
    again = load_folder(articles, cache)
    assert "ecb-rates.md" not in cache.entries and all(a.source != "ecb-rates.md" for a in again.articles)
    assert [problem.source for problem in again.problems if problem.skipped] == ["broken.json"]
    assert cache.reused == len(list(articles.glob("*.*")))


def test_a_library_sync_reads_only_the_new_file(
    articles: Path, tmp_path: Path, embedder: Embedder, settled_at_once: None
) -> None:
    library = Library(Settings(articles, tmp_path / "index"), embedder=embedder)
    library.sync()
    (articles / "ferry.txt").write_text("Ferry strike ends\n\nThe ferry strike ended on Monday after talks.\n")
    report = library.sync()
    assert report.added == 1 and report.unchanged == len(load_folder(articles).articles) - 1
    assert library.file_cache.reused == len(list(articles.glob("*.*"))) - 1
    assert library.retrieve("When did the ferry strike end?", k=1)[0].citation.article_id == "ferry.txt"


def test_the_cache_keeps_no_article_bodies(articles: Path, settled_at_once: None) -> None:
    cache = filled_cache(articles)
    cached = [article for _, found, _ in cache.entries.values() for article in found]
    read = {article.article_id: article for article in load_folder(articles).articles}
    assert cached and not any(article.text or article.has_body for article in cached)
    assert all(article.body_hash == read[article.article_id].body_hash for article in cached)
    assert all(article.record_hash == read[article.article_id].record_hash for article in cached)
