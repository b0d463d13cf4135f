"""A real chat server for the web and browser tests: a tmp copy of the fixture articles, a free port."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from qa import Library, Settings
from qa.embed import Embedder
from qa.web import ChatApp

FIXTURES = Path(__file__).parent / "fixtures"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def live_app(
    root: Path, embedder: Embedder, watch: float | None = None, auth: tuple[str, str] | None = None
) -> Iterator[tuple[ChatApp, str]]:
    """A synced library over a copy of the fixture articles, served on 127.0.0.1; yields (app, url)."""
    shutil.copytree(FIXTURES / "articles", root / "articles")
    library = Library(Settings(articles_dir=root / "articles", index_dir=root / "index"), embedder=embedder)
    library.sync()
    app = ChatApp(library, watch=watch)
    url = app.launch(port=free_port(), auth=auth, block=False)
    try:
        yield app, url
    finally:
        app.close()
        library.store.close()
