"""Shared fixtures: one real model per test session, small real article folders, tmp indexes."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from qa import Library, Settings  # noqa: E402
from qa.embed import Embedder  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
# The BBC News dataset's folder (DIR/raw/<category>/<NNN>.txt; not shipped): the tests that read it
# run when BBC_NEWS_DIR names it, and are skipped otherwise.
BBC_NEWS = Path(os.environ["BBC_NEWS_DIR"]) if os.environ.get("BBC_NEWS_DIR") else None


@pytest.fixture(autouse=True)
def _no_qa_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up a developer's QA_* settings."""
    for name in list(os.environ):
        if name.startswith("QA_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    """The real default model, loaded once for the whole session."""
    return Embedder()


@pytest.fixture
def articles(tmp_path: Path) -> Path:
    """A copy of the fixture articles (seed article, .md, .json, .jsonl, .html) to change freely."""
    folder = tmp_path / "articles"
    shutil.copytree(FIXTURES / "articles", folder)
    return folder


BACKENDS = ("faiss", "milvus")  # every test of a `library` or `seed_library` runs on both index stores


def backend_settings(backend: str, articles: Path, index: Path) -> Settings:
    """Settings for `backend`: FAISS files in `index`, or milvus-lite in a file inside it."""
    store = "faiss" if backend == "faiss" else f"milvus-lite:{index / 'milvus.db'}"
    return Settings(articles_dir=articles, index_dir=index, store=store)


@pytest.fixture(params=BACKENDS)
def library(request: pytest.FixtureRequest, articles: Path, tmp_path: Path, embedder: Embedder) -> Iterator[Library]:
    """A library over the fixture articles with its index in a tmp folder (not yet built), on each backend."""
    lib = Library(backend_settings(request.param, articles, tmp_path / "index"), embedder=embedder)
    yield lib
    lib.store.close()


@pytest.fixture
def faiss_library(articles: Path, tmp_path: Path, embedder: Embedder) -> Iterator[Library]:
    """Like `library`, on the FAISS store only (for tests of its files)."""
    lib = Library(backend_settings("faiss", articles, tmp_path / "index"), embedder=embedder)
    yield lib
    lib.store.close()


@pytest.fixture(scope="session", params=BACKENDS)
def seed_library(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
) -> Library:
    """A built index over the fixture articles, shared by read-only tests, on each backend."""
    root = tmp_path_factory.mktemp(f"seed-{request.param}")
    shutil.copytree(FIXTURES / "articles", root / "articles")
    lib = Library(backend_settings(request.param, root / "articles", root / "index"), embedder=embedder)
    lib.sync()
    return lib
