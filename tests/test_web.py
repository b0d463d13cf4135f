"""The web API, used with gradio_client against a live server over a copy of the fixture articles."""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from live import free_port, live_app

import app as app_module
from qa.config import parse_auth
from qa.embed import Embedder
from qa.errors import QAError
from qa.reply import NOT_FOUND
from qa.store import Store
from qa.web import ChatApp

MADURO = "Venezuela’s Maduro Opens Door to U.S. Negotiations Amid Military Pressure"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[tuple[ChatApp, str]]:
    with live_app(tmp_path_factory.mktemp("web"), embedder, watch=None) as (chat, url):
        yield chat, url


@pytest.fixture(scope="module")
def client(server: tuple[ChatApp, str]) -> Client:
    return Client(server[1], verbose=False)


def plain(markdown: str) -> str:
    """What a reader sees of our Markdown: escapes and entities undone."""
    return html.unescape(re.sub(r"\\(.)", r"\1", markdown))


def test_ask_answers_with_quoted_sentences_markers_and_sources(client: Client, server: tuple[ChatApp, str]) -> None:
    reply = client.predict("Who interviewed Maduro?", 3, None, api_name="/ask")
    answer, sources = reply.split("**Sources**")
    assert "Ignacio Ramonet" in answer and re.search(r"\[1\]", answer)
    assert f"1. **{MADURO}**" in plain(sources)
    article = (server[0].library.settings.articles_dir / "venezuela-maduro-us-negotiations.txt").read_text()
    for sentence in re.split(r" \[\d+\] ?", plain(answer).strip()):
        assert not sentence or sentence in article  # verbatim, never paraphrased


def test_ask_uses_earlier_questions_for_a_follow_up(client: Client) -> None:
    reply = client.predict("When did it air?", 3, ["Who interviewed Maduro?", "What did he offer the US?"],
                           api_name="/ask")
    assert "New Year’s Eve" in reply and "Follow-up: searched as" in reply


def test_retrieve_returns_the_hits_as_json(client: Client, server: tuple[ChatApp, str]) -> None:
    result = client.predict("What is the ECB deposit rate?", 2, api_name="/retrieve")
    assert result["question"] == "What is the ECB deposit rate?" and len(result["hits"]) == 2
    top = result["hits"][0]
    assert top["rank"] == 1 and top["title"] == "ECB holds interest rates at 2.5% as inflation cools"
    assert top["url"] == "https://example.org/news/ecb-holds-rates" and top["date"] == "2025-03-06"
    assert "2.5%" in top["text"] and {"score", "paragraph", "passage", "start", "end"} <= top.keys()


@pytest.mark.parametrize("question", ["Who won the football match last night?", "How do I bake a chocolate cake?"])
def test_off_topic_questions_get_the_honest_not_found_reply(client: Client, question: str) -> None:
    reply = client.predict(question, 3, None, api_name="/ask")
    assert reply.startswith(f"**{NOT_FOUND}**") and reply.count("*weak match*") == 3


def test_the_api_offers_ask_answer_retrieve_timeline_related_transcript_and_upload(client: Client) -> None:
    assert set(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == {
        "/ask", "/answer", "/retrieve", "/timeline", "/related", "/transcript", "/upload"
    }


def test_the_timeline_api_and_timeline_questions_give_the_story_by_date(client: Client) -> None:
    found = client.predict("the Dutch rail strike", 5, api_name="/timeline")
    assert found["found"] is True and found["undated"] == []
    entry = found["dated"][0]
    assert [(entry["date"], entry["title"]) for entry in found["dated"]] == [
        ("2025-06-02", "Rail strike halts trains across the Netherlands")
    ]
    assert entry["text"].startswith("Dutch rail workers walked out on Monday") and entry["start"] == 0
    reply = client.predict("How did the Dutch rail strike unfold?", 3, None, api_name="/ask")
    assert reply.startswith("**Timeline: the Dutch rail strike** (1 dated, 0 undated)")
    assert "- **2025-06-02** · “Dutch rail workers walked out on Monday" in reply
    with pytest.raises(Exception, match="The topic is empty"):
        client.predict("  ", 5, api_name="/timeline")
    with pytest.raises(Exception, match="The limit must be a whole number from 1 to 100"):
        client.predict("rail strike", 0, api_name="/timeline")


def test_related_lists_the_closest_articles_with_their_dates_and_links(client: Client) -> None:
    result = client.predict("ecb-rates.md", 2, api_name="/related")
    assert result["article_id"] == "ecb-rates.md" and len(result["related"]) == 2
    first = result["related"][0]
    assert set(first) == {"article_id", "title", "date", "url", "source", "publisher", "similarity"}
    assert first["article_id"] != "ecb-rates.md" and first["similarity"] >= result["related"][1]["similarity"]
    with pytest.raises(Exception, match="No indexed article has the id 'no-such.md'"):
        client.predict("no-such.md", 2, api_name="/related")
    with pytest.raises(Exception, match="k must be a whole number from 1 to 20"):
        client.predict("ecb-rates.md", 0, api_name="/related")


def test_transcript_asks_the_questions_as_one_conversation(client: Client) -> None:
    result = client.predict(["Who interviewed Maduro?", "When did it air?"], 3, "", api_name="/transcript")
    first, second = result["json"]["turns"]
    assert "Ramonet" in first["answer"] and re.search(r" \[[1-3]\]$", first["answer"]), "quotes and their markers"
    assert second["query"] != second["question"], "the second question is a follow-up of the first"
    assert "## 1. Who interviewed Maduro?" in result["markdown"] and "## 2. When did it air?" in result["markdown"]
    with pytest.raises(Exception, match="Give a list of 1 to 20 questions"):
        client.predict([], 3, "", api_name="/transcript")
    with pytest.raises(Exception, match="Question 2: The question is empty"):
        client.predict(["Who interviewed Maduro?", "  "], 3, "", api_name="/transcript")


def test_the_answer_api_gives_the_same_answer_as_json(client: Client) -> None:
    answer = client.predict("Who interviewed Maduro?", 3, None, "", api_name="/answer")
    assert answer["found"] is True and len(answer["sources"]) == 3
    first = answer["quotes"][0]
    assert "Ramonet" in first["text"] and first["text"] in answer["sources"][first["source"] - 1]["text"]
    reply = client.predict("Who interviewed Maduro?", 3, None, "", api_name="/ask")
    assert reply.startswith(" ".join(first["text"].split()))


def test_our_errors_come_back_as_sentences(client: Client) -> None:
    assert "The question is empty" in client.predict("   ", 3, None, api_name="/ask")
    assert "number of sources must be from 1 to 10" in client.predict("rail strike", 11, None, api_name="/ask")
    with pytest.raises(Exception, match="k must be a whole number"):
        client.predict("rail strike", 0, api_name="/retrieve")


def test_the_search_mode_can_be_chosen_per_question(client: Client) -> None:
    exact = client.predict("Ramonet", 1, "bm25", api_name="/retrieve")
    assert "Ramonet" in exact["hits"][0]["text"]
    assert "Chevron" in client.predict("Which US oil company can export Venezuelan crude?", 2, None, "dense",
                                       api_name="/ask")
    assert "mode must be one of dense, bm25, hybrid" in client.predict("oil", 2, None, "fuzzy", api_name="/ask")


def test_the_index_panel_shows_the_headline_self_check(server: tuple[ChatApp, str]) -> None:
    panel = server[0].index_panel()
    assert "Self-check: searched by its headline, an article comes first" in panel
    assert "articles sampled" in panel


def test_an_uploaded_article_answers_questions_at_once(client: Client, tmp_path: Path) -> None:
    article = tmp_path / "ferry.md"
    article.write_text(
        "# Lake Zurich paddle steamer runs on solar power\n\ndate: 2025-08-01\n\n"
        "The oldest paddle steamer on Lake Zurich, the Stadt Rapperswil, now runs partly on solar power after "
        "engineers fitted 40 panels to its roof, the operator ZSG said on Monday.\n"
    )
    started = time.perf_counter()
    status, panel, _ = client.predict([handle_file(str(article))], api_name="/upload")
    assert "ferry.md: saved as ferry.md (1 article)" in plain(status) and "Ready" in status
    assert "Lake Zurich paddle steamer runs on solar power" in plain(panel)
    reply = client.predict("Which paddle steamer now runs on solar power?", 2, None, api_name="/ask")
    assert "Stadt Rapperswil" in reply and time.perf_counter() - started < 20


def test_uploads_of_the_wrong_type_or_broken_files_are_refused_with_reasons(client: Client, tmp_path: Path) -> None:
    (tmp_path / "tool.exe").write_bytes(b"MZ\x90\x00")
    (tmp_path / "broken.json").write_text('{"title": "no closing brace"')
    status, _, _ = client.predict(
        [handle_file(str(tmp_path / "tool.exe")), handle_file(str(tmp_path / "broken.json"))], api_name="/upload"
    )
    assert "✗ tool.exe: '.exe' files are not articles" in plain(status)
    assert "✗ broken.json: malformed JSON" in plain(status)


def test_questions_during_a_sync_are_answered_from_the_previous_index(
    client: Client, server: tuple[ChatApp, str]
) -> None:
    library = server[0].library
    (library.settings.articles_dir / "bridge.txt").write_text(
        "Harbour bridge in Bergen reopens\nThe rebuilt harbour bridge in Bergen reopened to cyclists on Friday after "
        "eighteen months of repairs costing 300 million kroner, the city council said.\n"
    )
    embedding, release = threading.Event(), threading.Event()

    def pause(done: int, total: int) -> None:  # the sync stops here, before it writes anything
        embedding.set()
        release.wait(60)

    syncing = threading.Thread(target=library.sync, kwargs={"progress": pause})
    syncing.start()
    try:
        assert embedding.wait(60)
        started = time.perf_counter()
        during = client.predict("When did the Bergen harbour bridge reopen?", 3, None, api_name="/ask")
        hits = client.predict("What is the ECB deposit rate?", 1, api_name="/retrieve")["hits"]
        assert time.perf_counter() - started < 15  # not waiting for the sync
        assert "Harbour bridge in Bergen" not in during and hits[0]["title"].startswith("ECB holds")
    finally:
        release.set()
        syncing.join(60)
    after = client.predict("When did the Bergen harbour bridge reopen?", 3, None, api_name="/ask")
    assert "Harbour bridge in Bergen reopens" in plain(after) and "reopened to cyclists on Friday" in after


def test_startup_with_an_up_to_date_index_embeds_nothing(server: tuple[ChatApp, str], embedder: Embedder) -> None:
    library = server[0].library
    library.sync()
    batches, texts = embedder.batches, embedder.texts_embedded
    report = app_module.prepare(library)
    assert report.passages_embedded == 0 and not report.changed
    assert (embedder.batches, embedder.texts_embedded) == (batches, texts)


def test_startup_while_another_process_writes_the_index_serves_the_index_as_it_is(
    server: tuple[ChatApp, str], capsys: pytest.CaptureFixture[str]
) -> None:
    library = server[0].library
    with Store(library.settings.index_dir).writing():
        assert app_module.prepare(library) is None
    assert "Serving the index as it is for now" in capsys.readouterr().err


def test_a_password_protects_the_page_and_the_api(server: tuple[ChatApp, str]) -> None:
    guarded = ChatApp(server[0].library, watch=None)
    url = guarded.launch(port=free_port(), auth=("reader", "s3cret"), block=False)
    try:
        with pytest.raises(Exception):  # noqa: B017  gradio_client raises its own error types here
            Client(url, verbose=False).predict("rail strike", 1, api_name="/retrieve")
        hits = Client(url, auth=("reader", "s3cret"), verbose=False).predict("rail strike", 1, api_name="/retrieve")
        assert hits["hits"][0]["title"] == "Rail strike halts trains across the Netherlands"
    finally:
        guarded.close()


@pytest.mark.parametrize(
    ("host", "auth", "allowed"),
    [("127.0.0.1", None, True), ("localhost", None, True), ("::1", None, True), ("0.0.0.0", None, False),
     ("192.168.1.20", None, False), ("0.0.0.0", ("user", "pw"), True)],
)
def test_binding_beyond_localhost_requires_a_password(host: str, auth: tuple[str, str] | None, allowed: bool) -> None:
    if allowed:
        app_module.check_binding(host, auth)
    else:
        with pytest.raises(QAError, match="QA_AUTH=user:password"):
            app_module.check_binding(host, auth)


def test_app_refuses_to_serve_all_interfaces_without_qa_auth(capsys: pytest.CaptureFixture[str]) -> None:
    assert app_module.main(["--host", "0.0.0.0", "--port", "7999"]) == 1
    assert "set QA_AUTH=user:password" in capsys.readouterr().err


@pytest.mark.parametrize("raw", ["user", ":pw", "user:", "nocolon"])
def test_a_malformed_qa_auth_is_a_clear_error(raw: str) -> None:
    with pytest.raises(QAError, match="user:password"):
        parse_auth(raw)
