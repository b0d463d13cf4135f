"""The Milvus store (milvus-lite here): moving an index there, workers, interrupted syncs.

The verbs of every store are specified once for both in test_store_contract.py, and every test of
`library` and `seed_library` runs on FAISS and on Milvus (see conftest.py).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from qa import Library
from qa.backends import copy_index
from qa.build import embed_share
from qa.cli import main
from qa.config import Settings
from qa.embed import Embedder
from qa.errors import ConfigError

QUESTIONS = ("Who interviewed Maduro?", "What did the Northern Lighthouse Board restore?", "rail strike")


def test_a_faiss_index_moves_to_milvus_lite_without_embedding(faiss_library: Library, tmp_path: Path) -> None:
    faiss_library.sync()
    expected = {q: [hit.to_json() for hit in faiss_library.retrieve(q, k=3)] for q in QUESTIONS}
    target = f"milvus-lite:{tmp_path / 'moved.db'}"
    assert copy_index(faiss_library.store, Library(replace(faiss_library.settings, store=target)).store) > 0

    moved = Library(replace(faiss_library.settings, store=target), embedder=Embedder())
    assert moved.sync().passages_embedded == 0
    for question, hits in expected.items():
        found = [hit.to_json() for hit in moved.retrieve(question, k=3)]
        assert [{**hit, "score": 0} for hit in found] == [{**hit, "score": 0} for hit in hits]
        assert [hit["score"] for hit in found] == pytest.approx([hit["score"] for hit in hits], rel=1e-4)
    assert moved.embedder.texts_embedded == 0 and moved.store.check() == []
    moved.store.close()


def test_qa_index_to_copies_after_syncing(
    faiss_library: Library, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    faiss_library.sync()  # built with the session's model: the command's sync has nothing to embed
    folders = ["--articles", str(faiss_library.settings.articles_dir), "--index", str(faiss_library.settings.index_dir)]
    target = f"milvus-lite:{tmp_path / 'copy.db'}"
    code = main(["index", *folders, "--to", target])
    assert code == 0 and "Copied 14 passages into" in capsys.readouterr().out


def test_two_workers_share_the_embedding_and_the_sync_embeds_nothing_more(library: Library) -> None:
    shares = [embed_share(library.settings, library.store, library.embedder, worker, 2) for worker in (0, 1)]
    report = library.sync()
    assert all(shares) and sum(shares) == report.passages_total
    assert report.passages_embedded == 0 and report.added == 6


def test_an_interrupted_milvus_sync_is_finished_by_the_next_one(articles: Path, tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    settings = Settings(articles_dir=articles, index_dir=tmp_path / "index", store=f"milvus-lite:{tmp_path / 'm.db'}")
    library = Library(settings, embedder=embedder)
    library.sync()
    # What a sync killed half-way leaves: the article marked pending, its record and rows gone.
    library.store.mark_pending(["ecb-rates.md"])
    library.store.client.delete("qa_articles", ids=["ecb-rates.md"])
    library.store.client.delete("qa_passages", filter='article_id == "ecb-rates.md"')
    assert any("interrupted" in problem for problem in library.store.check())

    report = library.sync()
    assert report.added == 1 and report.passages_embedded == 0  # the vectors were kept
    assert library.store.check() == []
    assert library.retrieve("What did the ECB do with interest rates?", k=1)[0].citation.article_id == "ecb-rates.md"
    library.store.close()


def test_an_unknown_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="milvus-lite:index/milvus.db"):
        Settings(index_dir=tmp_path, store="postgres://db")
