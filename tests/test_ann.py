"""The FAISS index layout: exact below a size, IVF above it, and everything else works the same on either."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

import qa.store.faiss_files
from qa import Library, Settings
from qa.embed import Embedder
from qa.errors import ConfigError
from qa.schema import Filters
from qa.store import EXACT_UP_TO, FLAT, FaissLayout, choose_layout

IVF = "IVF4,Flat nprobe=4"  # four lists, all probed: finds what exact search finds
QUESTIONS = (
    "What did the ECB do with interest rates?",
    "How much ice did Swiss glaciers lose?",
    "Who interviewed Maduro?",
)


@pytest.fixture
def library(faiss_library: Library) -> Library:
    """These tests are about FAISS index layouts: the FAISS store only."""
    return faiss_library


@pytest.fixture
def ivf_library(articles: Path, tmp_path: Path, embedder: Embedder) -> Iterator[Library]:
    """A library over the fixture articles whose FAISS index is an IVF index."""
    lib = Library(Settings(articles_dir=articles, index_dir=tmp_path / "ivf", faiss_index=IVF), embedder=embedder)
    yield lib
    lib.store.close()


def layout_of(library: Library) -> str:
    return library.store.manifest()["faiss_index"]


def test_auto_is_exact_below_the_threshold_and_ivf_from_it() -> None:
    assert choose_layout("auto", 0) == choose_layout("auto", EXACT_UP_TO - 1) == FLAT
    at = choose_layout("auto", EXACT_UP_TO)
    assert at.factory.startswith("IVF") and at.search.startswith("nprobe=")
    million = choose_layout("auto", 1_000_000)
    assert million.factory == "IVF1024,Flat" and million.search == "nprobe=33"  # bench.ann: recall@10 0.98
    assert choose_layout("flat", 10**8) == FLAT
    assert choose_layout(" HNSW32 efSearch=64 ", 10) == FaissLayout("HNSW32", "efSearch=64")
    assert str(FaissLayout.parse("IVF1024,Flat nprobe=32")) == "IVF1024,Flat nprobe=32"


def test_the_store_switches_to_ivf_when_the_collection_reaches_the_threshold(
    library: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    library.sync()
    passages = library.store.counts()["passages"]
    assert layout_of(library) == "Flat"
    monkeypatch.setattr(qa.store.faiss_files, "EXACT_UP_TO", passages)  # the collection reaches the threshold
    embedded = library.embedder.texts_embedded
    library.sync()
    assert layout_of(library).startswith("IVF") and library.embedder.texts_embedded == embedded
    assert library.store.check() == []
    monkeypatch.setattr(qa.store.faiss_files, "EXACT_UP_TO", passages + 1)
    library.sync()
    assert layout_of(library) == "Flat"


def test_an_ivf_index_probing_every_list_finds_what_exact_search_finds(library: Library, ivf_library: Library) -> None:
    library.sync()
    ivf_library.sync()
    assert layout_of(library) == "Flat" and layout_of(ivf_library) == IVF
    for question in QUESTIONS:
        for mode in ("dense", "hybrid"):
            exact = [hit.text for hit in library.retrieve(question, k=3, mode=mode)]
            assert [hit.text for hit in ivf_library.retrieve(question, k=3, mode=mode)] == exact


@pytest.mark.parametrize("subset_limit", [qa.store.EXACT_SUBSET_MAX, 0], ids=["exact-subset", "ivf-selector"])
def test_filters_hold_on_an_ivf_index(ivf_library: Library, monkeypatch: pytest.MonkeyPatch, subset_limit: int) -> None:
    """Small filtered sets are scanned exactly; large ones go through IVF with an ID selector: both filter."""
    monkeypatch.setattr(qa.store.faiss_files, "EXACT_SUBSET_MAX", subset_limit)
    ivf_library.settings = Settings(**{**ivf_library.settings.__dict__, "faiss_index": "IVF4,Flat nprobe=1"})
    ivf_library.store.faiss_index_setting = "IVF4,Flat nprobe=1"
    ivf_library.sync()
    assert layout_of(ivf_library) == "IVF4,Flat nprobe=1"
    for question in QUESTIONS:
        hits = ivf_library.retrieve(question, k=5, mode="dense", filters=Filters(articles=("ecb-rates.md",)))
        assert hits and {hit.citation.article_id for hit in hits} == {"ecb-rates.md"}


def test_updates_and_deletions_on_an_ivf_index(ivf_library: Library, articles: Path) -> None:
    ivf_library.sync()
    path = articles / "ecb-rates.md"
    path.write_text(path.read_text().replace("2.5% on Thursday", "2.25% on Thursday"))
    (articles / "glacier-study.json").unlink()
    report = ivf_library.sync()
    assert (report.updated, report.removed) == (1, 1) and layout_of(ivf_library) == IVF
    texts = [hit.text for hit in ivf_library.retrieve("ECB deposit rate", k=3)]
    assert any("2.25% on Thursday" in text for text in texts)
    assert not any("2.5% on Thursday" in text for text in texts)
    hits = ivf_library.retrieve("How much ice did Swiss glaciers lose?", k=10)
    assert all(hit.citation.article_id != "glacier-study.json" for hit in hits)
    assert ivf_library.store.check() == []


def test_qa_check_reads_an_ivf_index_and_notices_a_wrong_vector(ivf_library: Library) -> None:
    ivf_library.sync()
    store = ivf_library.store
    assert store.check() == []
    row, key = store.db.execute("SELECT row, vector_key FROM passages LIMIT 1").fetchone()
    with store.db:
        store.db.execute("UPDATE vectors SET vector = ? WHERE vector_key = ?",
                         (np.zeros(ivf_library.embedder.dimension, np.float32).tobytes(), key))
    assert store.check() == ["1 FAISS vectors differ from the stored ones"]


def test_an_ivf_index_gives_back_each_passage_vector_for_near_duplicate_merging(ivf_library: Library) -> None:
    ivf_library.sync()
    store = ivf_library.store
    stored = dict(store.db.execute(
        "SELECT p.row, v.vector FROM passages p JOIN vectors v ON v.vector_key = p.vector_key"
    ))
    found = store.vectors([*stored, 10**9])  # a row that does not exist is left out
    assert set(found) == set(stored)
    assert all(np.array_equal(found[row], np.frombuffer(blob, np.float32)) for row, blob in stored.items())


def test_changing_the_faiss_setting_rebuilds_faiss_from_stored_vectors_without_embedding(library: Library) -> None:
    library.sync()
    manifest = library.store.manifest()
    embedded = library.embedder.texts_embedded
    expected = [hit.text for hit in library.retrieve(QUESTIONS[0], k=3)]
    for setting in (IVF, "flat"):
        other = Library(Settings(library.settings.articles_dir, library.settings.index_dir, faiss_index=setting),
                        embedder=library.embedder)
        report = other.sync()
        assert report.passages_embedded == 0 and report.unchanged == 6
        assert layout_of(other) == str(FaissLayout.parse(setting))
        assert [hit.text for hit in other.retrieve(QUESTIONS[0], k=3)] == expected
        assert other.store.check() == []
        other.store.close()
    after = library.store.manifest()
    assert after["faiss"] != manifest["faiss"] and after["lexical"] == manifest["lexical"]  # BM25 kept
    assert library.embedder.texts_embedded == embedded  # passages: none (questions are embedded, of course)
    assert sorted(path.name for path in library.settings.index_dir.glob("vectors-*")) == [after["faiss"]]


def test_a_faiss_rebuild_keeps_the_bm25_segments_of_earlier_syncs(library: Library) -> None:
    library.sync()
    folder = library.settings.articles_dir
    (folder / "later.md").write_text("# Harbour reopens\n\nThe old harbour of Tallinn reopened on Monday.\n",
                                     encoding="utf-8")
    library.sync()  # its BM25 index: the first sync's segment plus one in a newer folder
    other = Library(Settings(folder, library.settings.index_dir, faiss_index=IVF), embedder=library.embedder)
    other.sync()
    assert other.store.check() == []
    assert "Tallinn" in other.retrieve("Which harbour reopened?", k=1, mode="bm25")[0].text
    assert other.retrieve("How much ice did Swiss glaciers lose?", k=1, mode="bm25")
    other.store.close()


def test_an_ivf_index_too_large_for_the_collection_falls_back_to_exact_search(
    articles: Path, tmp_path: Path, embedder: Embedder
) -> None:
    settings = Settings(articles_dir=articles, index_dir=tmp_path / "index", faiss_index="IVF4096,Flat")
    library = Library(settings, embedder=embedder)
    library.sync()
    assert layout_of(library) == "Flat" and library.retrieve(QUESTIONS[1], k=1)
    generation = library.store.manifest()["generation"]
    library.sync()
    assert library.store.manifest()["generation"] == generation  # nothing to refit
    library.store.close()


def test_an_impossible_factory_string_is_a_config_error(articles: Path, tmp_path: Path, embedder: Embedder) -> None:
    library = Library(Settings(articles_dir=articles, index_dir=tmp_path / "index", faiss_index="IVFx,Nope"),
                      embedder=embedder)
    with pytest.raises(ConfigError, match="not a FAISS index factory string"):
        library.sync()
    with pytest.raises(ConfigError, match="faiss_index is empty"):
        Settings(faiss_index=" ")


def test_the_setting_is_read_from_qa_faiss_index(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env().faiss_index == "auto"
    monkeypatch.setenv("QA_FAISS_INDEX", "IVF256,Flat nprobe=16")
    assert Settings.from_env().faiss_index == "IVF256,Flat nprobe=16"
