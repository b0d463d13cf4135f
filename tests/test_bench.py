"""The benchmarks say which corpus they read (`--corpus DIR`) and stop with that sentence without it;
a synthetic index holds what a build of its articles folder would."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from bench.bbc import CORPUS_HELP
from bench.corpus import Base, fill, real_base, settings_for, synthetic_library
from qa import Library
from qa.embed import Embedder
from qa.lexical import LexicalIndex, terms
from qa.sentences import PassageText
from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parent.parent
READERS = ["ann", "bbc_dataset", "calibrate_not_found", "fastpath", "incremental", "latency", "lexical_rebuild",
           "related", "throughput", "train_scorer", "workers"]


def arguments(name: str, tmp_path: Path) -> list[str]:
    """What each benchmark needs besides --corpus."""
    return {"bbc_dataset": [str(tmp_path / "out")], "calibrate_not_found": ["--work", str(tmp_path / "work")],
            "train_scorer": ["--squad", str(tmp_path / "squad")]}.get(name, [])


def words(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("name", READERS)
def test_each_benchmark_says_which_corpus_it_reads(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as stop:
        importlib.import_module(f"bench.{name}").main([*arguments(name, tmp_path), "--help"])
    assert stop.value.code == 0
    assert words(f"--corpus DIR {CORPUS_HELP}") in words(capsys.readouterr().out)


@pytest.mark.parametrize("name", READERS)
def test_each_benchmark_stops_with_that_sentence_without_the_corpus(name: str, tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as stop:
        importlib.import_module(f"bench.{name}").main([*arguments(name, tmp_path), "--corpus", str(tmp_path / "bbc")])
    assert f"no BBC News articles in {tmp_path / 'bbc'}. --corpus DIR: {CORPUS_HELP}" in str(stop.value.code)


def test_a_missing_corpus_exits_1_with_a_sentence_and_no_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}
    run = subprocess.run(
        [sys.executable, "-m", "bench.throughput", "--quick", "--corpus", str(tmp_path / "bbc")], cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 1 and CORPUS_HELP in run.stderr and "Traceback" not in run.stderr


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Base:
    """Real passages to sample from: the fixture articles, indexed for real."""
    folder = tmp_path_factory.mktemp("base")
    library = Library(settings_for(FIXTURES / "articles", folder / "index"), embedder=embedder)
    library.sync()
    found = real_base(library, sentences=True)
    library.store.close()
    return found


def test_a_synthetic_index_is_what_a_build_of_its_articles_folder_would_hold(
    base: Base, tmp_path: Path, embedder: Embedder
) -> None:
    settings = replace(settings_for(tmp_path / "articles", tmp_path / "index"), faiss_index="IVF4,Flat nprobe=4")
    settings.articles_dir.mkdir()
    library = synthetic_library(settings, embedder)

    assert fill(library, 3001, base) == 3001
    assert library.store.check() == []
    report = library.sync()
    assert (report.added, report.updated, report.removed, report.passages_total) == (0, 0, 0, 3001)
    assert library.store.manifest()["faiss_index"] == "IVF4,Flat nprobe=4"

    db = library.store.db
    bodies = [text for (text,) in db.execute("SELECT text FROM bodies")]
    assert len(bodies) == len(set(bodies)) == db.execute("SELECT COUNT(*) FROM articles").fetchone()[0]
    sizes = [count for (count,) in db.execute("SELECT COUNT(*) FROM passages GROUP BY body_hash")]
    assert max(sizes) <= 6 and sorted(sizes)[1] >= 2  # 2-6 passages an article, the last one cut to fit
    rows, stored_terms = library.store.catalog.terms()
    exhaustive = LexicalIndex.build(rows, stored_terms)  # BM25 counted from the stored terms, passage by passage
    for question in ("What did the central bank decide about rates?", "glacier melting study", "lighthouse keeper"):
        assert library.store.search_terms(question, 20) == exhaustive.search(question, 20)


def test_a_synthetic_index_gives_each_passage_its_source_s_sentence_vectors(
    base: Base, tmp_path: Path, embedder: Embedder
) -> None:
    settings = settings_for(tmp_path / "articles", tmp_path / "index")
    settings.articles_dir.mkdir()
    library = Library(settings, embedder=embedder)

    fill(library, 300, base)
    articles = dict(library.store.db.execute("SELECT article_id, title FROM articles").fetchall())
    assert library.sentences.article_ids() == set(articles)
    stored = library.sentences.count()
    assert library.sync().passages_total == 300
    assert library.sentences.count() == stored  # nothing left to embed

    (article_id,) = library.store.db.execute(
        "SELECT a.article_id FROM articles a JOIN passages p ON p.body_hash = a.body_hash WHERE p.row = 1"
    ).fetchone()
    text = library.store.passages([1])[1].text
    (found,) = library.sentences.get([PassageText(articles[article_id], text, article_id)])
    source = base.sentences[base.texts.index(text)]
    assert found.spans == source.spans and np.allclose(found.vectors, source.vectors, atol=1e-3)
    (stored_terms,) = library.store.db.execute("SELECT terms FROM passages WHERE row = 1").fetchone()
    assert stored_terms.split() == terms([articles[article_id]])[0] + terms([text])[0]  # as a build splits them
    library.store.close()


def test_the_synthetic_vectors_are_their_sources_plus_noise(base: Base, tmp_path: Path, embedder: Embedder) -> None:
    settings = settings_for(tmp_path / "articles", tmp_path / "index")
    settings.articles_dir.mkdir()
    library = synthetic_library(settings, embedder)
    fill(library, 500, base)
    passages = library.store.passages(range(1, 501))
    vectors = library.store.vectors(range(1, 501))
    source_of = {text: at for at, text in enumerate(base.texts)}
    cosines = [float(vectors[row] @ base.vectors[source_of[passages[row].text]]) for row in range(1, 501)]
    assert np.allclose([float(np.linalg.norm(vectors[row])) for row in range(1, 501)], 1.0, atol=1e-5)
    assert 0.6 < float(np.median(cosines)) < 0.8
