"""Progress and resumability: a long build shows passages/s and an ETA, and an interrupted one resumes
without embedding again what it had embedded."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import qa.build
from qa import Library, Settings
from qa.cli import run_index
from qa.embed import Embedder
from qa.progress import Progress, ProgressLine, ProgressMeter, describe_progress

CHUNK = 4  # passages embedded (and cached) at a time in these tests: several chunks in a small folder


class Interrupted(Exception):
    """Stands for Ctrl-C or a crash in the middle of the embedding."""


def stop_after(passages: int) -> Progress:
    def progress(done: int, total: int) -> None:
        if done >= passages:
            raise Interrupted
    return progress


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(qa.build, "EMBED_CHUNK", CHUNK)


@pytest.fixture
def short_passages(articles: Path, tmp_path: Path, embedder: Embedder, small_chunks: None) -> Library:
    """The fixture articles cut into short passages (a few dozen), embedded CHUNK at a time."""
    settings = Settings(articles_dir=articles, index_dir=tmp_path / "index", passage_words=20)
    return Library(settings, embedder=embedder)


def test_an_interrupted_build_resumes_without_embedding_anything_twice(
    short_passages: Library, embedder: Embedder
) -> None:
    before = embedder.texts_embedded
    with pytest.raises(Interrupted):
        short_passages.sync(progress=stop_after(2 * CHUNK))
    assert embedder.texts_embedded - before == 2 * CHUNK
    assert not short_passages.store.manifest(), "an interrupted build leaves no index behind"

    calls: list[tuple[int, int]] = []
    before = embedder.texts_embedded
    report = short_passages.sync(progress=lambda done, total: calls.append((done, total)))

    total = calls[0][1]
    assert total > 4 * CHUNK and report.passages_total == total
    assert calls[0] == (2 * CHUNK, total), "the first progress call counts what was already embedded"
    assert calls[-1] == (total, total)
    assert embedder.texts_embedded - before == total - 2 * CHUNK == report.passages_embedded
    assert report.passages_cached == 2 * CHUNK
    assert f"{2 * CHUNK} more were already embedded" in report.summary()
    assert short_passages.store.check() == []


def test_a_rebuild_with_the_same_model_reuses_every_vector(short_passages: Library, embedder: Embedder) -> None:
    first = short_passages.sync()
    before = embedder.texts_embedded
    again = short_passages.sync(rebuild=True)
    assert embedder.texts_embedded == before and again.passages_embedded == 0
    assert again.passages_cached == first.passages_total == again.passages_total


def test_index_command_says_it_resumed_and_shows_rate_and_eta(
    short_passages: Library, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(Interrupted):
        short_passages.sync(progress=stop_after(CHUNK))
    capsys.readouterr()

    assert run_index(short_passages, rebuild=False) == 0
    shown = capsys.readouterr()
    lines = shown.err.splitlines()
    total = short_passages.store.counts()["passages"]
    assert lines[0] == f"resuming: {CHUNK} of {total} passages already embedded"
    during = lines[1]  # not a terminal: a line after the first chunk, then every 30 s, then the last
    assert during.startswith(f"{2 * CHUNK}/{total} passages embedded (") and "passages/s · ETA " in during
    assert lines[-1].startswith(f"{total}/{total} passages embedded (100%) · ") and " in all" in lines[-1]
    assert len(lines) <= 4
    assert f"{total - CHUNK} passages embedded ({CHUNK} more were already embedded)" in shown.out


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def simulate(stream: io.StringIO, total: int = 5000, already: int = 1000, chunk: int = 64,
             seconds_a_chunk: float = 1.5) -> ProgressLine:
    """A long build fed to a ProgressLine: `already` passages cached, the rest at 64 per 1.5 s."""
    clock = Clock()
    shown = ProgressLine(stream, clock=clock)
    shown(already, total)
    for done in range(already + chunk, total + chunk, chunk):
        clock.now += seconds_a_chunk
        shown(min(done, total), total)
    shown.close()
    return shown


def test_logs_get_a_line_every_30_seconds_not_a_flood() -> None:
    log = io.StringIO()
    simulate(log)  # 63 chunks in 94.5 s
    lines = log.getvalue().splitlines()
    assert lines[0] == "resuming: 1,000 of 5,000 passages already embedded"
    assert lines[1] == "1,064/5,000 passages embedded (21%) · 42.7 passages/s · ETA 1:32"
    assert len(lines) == 6  # resuming, the first chunk, after 30, 60 and 90 s, the end
    assert lines[-1] == "5,000/5,000 passages embedded (100%) · 42.3 passages/s · 1:34 in all"
    assert "\r" not in log.getvalue()


def test_a_terminal_gets_one_live_line() -> None:
    screen = Terminal()
    simulate(screen)
    text = screen.getvalue()
    assert text.startswith("resuming: 1,000 of 5,000 passages already embedded\n")
    live = text.split("\n", 1)[1]
    assert live.count("\r") == 63 and live.endswith("· 1:34 in all\n") and live.count("\n") == 1


def test_the_meter_counts_only_freshly_embedded_passages() -> None:
    clock = Clock()
    meter = ProgressMeter(clock)
    meter(300, 1000)
    assert meter.rate is None and meter.eta is None
    clock.now = 10.0
    meter(500, 1000)
    assert meter.rate == 20.0 and meter.eta == 25.0 and not meter.finished
    assert meter.line() == "500/1,000 passages embedded (50%) · 20.0 passages/s · ETA 0:25"
    line = describe_progress(10, 10_000, 2.0, 4995 * 2)
    assert line == "10/10,000 passages embedded (0%) · 2.0 passages/s · ETA 2:46:30"
