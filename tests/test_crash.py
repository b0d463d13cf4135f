"""A build killed at any moment leaves the previous index loadable and consistent."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from qa import Library
from qa.embed import Embedder
from qa.search import dense_search

ROOT = Path(__file__).resolve().parent.parent
BUILD = """
import sys
from qa import Library, Settings
library = Library(Settings(sys.argv[1], sys.argv[2]))
library.embedder.model  # load before announcing the start
print("start", flush=True)
library.sync(progress=lambda done, total: print("embedded", done, total, flush=True))
print("done", flush=True)
"""
WORDS = (
    "minister council budget harbour storm election court river bank market farmers strike rail "
    "hospital school police league match festival museum bridge energy prices wages talks report"
).split()


def write_articles(folder: Path, count: int, rng: random.Random) -> None:
    for number in range(count):
        sentences = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
            for _ in range(rng.randint(20, 40))
        ]
        (folder / f"generated-{number:03d}.txt").write_text(f"Generated report {number}\n\n" + " ".join(sentences))


def killed_build(articles: Path, index: Path, delay: float) -> str:
    """Start a real build process, SIGKILL it `delay` seconds after it starts embedding."""
    process = subprocess.Popen(
        [sys.executable, "-c", BUILD, str(articles), str(index)], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "start"
    time.sleep(delay)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    return process.stdout.read()


@pytest.mark.slow
def test_killing_a_build_at_random_moments_never_breaks_the_index(library: Library, articles: Path) -> None:
    rng = random.Random(7)
    library.sync()
    old_articles = library.store.counts()["articles"]
    write_articles(articles, 40, rng)
    outcomes = []
    for delay in (0.0, 1.0, 2.5, rng.uniform(0.5, 3.0)):
        printed = killed_build(articles, library.settings.index_dir, delay)
        reader = Library(library.settings, embedder=library.embedder)
        assert reader.store.check() == []
        counts = reader.store.counts()
        assert counts["articles"] in (old_articles, old_articles + 40), "either the old or the new index"
        top = dense_search("Who interviewed Maduro?", 1, reader.store, library.embedder)[0]  # no sync
        assert top.citation.article_id.startswith("venezuela")
        outcomes.append(("new" if counts["articles"] > old_articles else "old", printed.count("embedded")))
        reader.store.close()
        if outcomes[-1][0] == "new":
            break
    assert outcomes[0][0] == "old", f"the first kill came too late to test anything: {outcomes}"

    resumed = Library(library.settings, embedder=Embedder())
    report = resumed.sync()
    assert resumed.store.check() == [] and resumed.store.counts()["articles"] == old_articles + 40
    if outcomes[-1][0] == "old" and any(chunks > 1 for _, chunks in outcomes):
        assert report.passages_embedded < report.passages_added, "what was embedded before the kill is reused"
