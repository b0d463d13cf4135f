"""The live server under load and hostile questions: every request answered, nothing executed.

The load test runs concurrent gradio_client clients against a real server on loopback while an
article upload and its sync run, and reports p50/p95 latency. Quick by default; QA_LONG_TESTS=1
runs the issue's 16 clients x 25 questions.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from live import live_app

from qa.embed import Embedder
from qa.web import ChatApp

LONG = os.environ.get("QA_LONG_TESTS") == "1"
CLIENTS, QUESTIONS = (16, 25) if LONG else (6, 6)
ASKED = [
    "Who interviewed Maduro?",
    "Which US oil company can export Venezuelan crude?",
    "What did the ECB decide about interest rates?",
    "How much ice did Swiss glaciers lose?",
    "Who became the youngest British chess champion?",
    "Why did Dutch trains stop?",
]
HOSTILE = [
    "x" * 100_000,
    "\x00\x01\x02\x1b[31m what \x7f",
    "🔥🔥 What did Maduro offer? 🛢️🇻🇪",
    "من أجرى المقابلة مع مادورو؟ \u202e(right-to-left override)",
    "<script>window.__hacked = 1</script><img src=x onerror=alert(1)> Who interviewed Maduro?",
    "[click me](javascript:alert(1)) **bold** # heading | table |",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[tuple[ChatApp, str]]:
    with live_app(tmp_path_factory.mktemp("load"), embedder, watch=None) as (chat, url):
        yield chat, url


@pytest.mark.parametrize("question", HOSTILE, ids=["100kB", "control", "emoji", "rtl", "html", "markdown"])
def test_hostile_questions_get_a_clear_reply_and_nothing_runs(server: tuple[ChatApp, str], question: str) -> None:
    reply = Client(server[1], verbose=False).predict(question, 3, None, api_name="/ask")
    assert isinstance(reply, str) and reply.strip()
    assert "<script" not in reply and "<img" not in reply and "javascript:" not in reply
    if len(question) > 2000:
        assert "at most 2,000 characters" in reply


def test_many_clients_at_once_during_an_upload_all_get_answers(
    server: tuple[ChatApp, str], tmp_path: Path
) -> None:
    chat, url = server
    article = tmp_path / "ferry-strike.md"
    article.write_text(
        "# Ferry crews strike in Calais\n\ndate: 2025-07-20\n\nFerry crews in Calais walked out on Sunday, "
        "stranding holiday traffic at the port for nine hours before talks resumed.\n"
    )
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()

    def one_client(number: int) -> None:
        client = Client(url, verbose=False)
        for turn in range(QUESTIONS):
            question = ASKED[(number + turn) % len(ASKED)]
            started = time.perf_counter()
            try:
                reply = client.predict(question, 3, None, api_name="/ask")
                ok = isinstance(reply, str) and bool(reply.strip()) and not reply.startswith("⚠️")
            except Exception as error:  # every failure counts, whatever its kind
                ok, reply = False, repr(error)
            with lock:
                latencies.append(time.perf_counter() - started)
                if not ok:
                    failures.append(f"{question}: {str(reply)[:200]}")

    with ThreadPoolExecutor(CLIENTS + 1) as pool:
        asking = [pool.submit(one_client, n) for n in range(CLIENTS)]
        uploaded = pool.submit(Client(url, verbose=False).predict, [handle_file(str(article))], api_name="/upload")
        for future in [*asking, uploaded]:
            future.result(timeout=600)

    assert failures == [], failures
    assert len(latencies) == CLIENTS * QUESTIONS
    assert "Ready" in uploaded.result()[0]
    assert "Calais" in chat.reply("Where did ferry crews strike?", 3)
    p50 = statistics.median(latencies) * 1000
    p95 = statistics.quantiles(latencies, n=20)[-1] * 1000
    print(f"\nload: {CLIENTS} clients x {QUESTIONS} questions during an upload: {len(latencies)} answered, "
          f"0 failed, p50 {p50:.0f} ms, p95 {p95:.0f} ms")
