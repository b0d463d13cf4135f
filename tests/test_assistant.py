"""`Library` is the front door: status, check and copy are its methods, and what they return is plain data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from qa import IndexCheck, Library, Settings, Status
from qa.errors import ConfigError


def test_status_before_a_build_counts_nothing_and_names_the_store(faiss_library: Library) -> None:
    status = faiss_library.status()
    assert isinstance(status, Status)
    assert (status.articles, status.passages, status.model, status.built_at, status.health) == (0, 0, None, None, None)
    assert status.store == faiss_library.settings.index_location


def test_status_after_a_sync_holds_the_counts_the_model_and_the_headline_check(faiss_library: Library) -> None:
    report = faiss_library.sync()
    status = faiss_library.status()
    assert status.articles == report.added and status.passages == report.passages_total
    assert status.model == "all-MiniLM-L6-v2" and status.built_at
    assert status.health is not None and status.health.articles == status.articles
    assert 0.0 <= status.health.recall_at_5 <= 1.0 and status.health.recall_at_1 <= status.health.recall_at_5
    assert status.encoder is not None and status.encoder.passages in status.to_json()["encoder"]["passages"]
    assert json.loads(json.dumps(status.to_json()))["articles"] == status.articles


def test_check_of_a_consistent_index_is_ok_with_its_counts(faiss_library: Library) -> None:
    faiss_library.sync()
    found = faiss_library.check()
    assert isinstance(found, IndexCheck) and found.ok and found.problems == ()
    assert (found.articles, found.passages) == (faiss_library.status().articles, faiss_library.status().passages)
    assert found.encoder == faiss_library.status().encoder


def test_check_without_an_index_reports_that_there_is_none(faiss_library: Library) -> None:
    found = faiss_library.check()
    assert not found.ok and found.encoder is None
    assert found.problems == (f"there is no index in {faiss_library.settings.index_dir}",)


def test_copy_to_the_store_the_index_is_in_is_refused(faiss_library: Library) -> None:
    faiss_library.sync()
    with pytest.raises(ConfigError, match="already in"):
        faiss_library.copy_to("faiss")


def test_copy_to_without_an_index_says_to_build_one(articles: Path, tmp_path: Path, faiss_library: Library) -> None:
    empty = Library(Settings(articles, tmp_path / "never-built"), embedder=faiss_library.embedder)
    with pytest.raises(ConfigError, match="qa index"):
        empty.copy_to(f"milvus-lite:{tmp_path / 'copy.db'}")
