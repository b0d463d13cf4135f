"""The chat page in a real headless chromium: answers, uploads, untrusted article text, "not found",
related coverage, the conversation's downloads and timelines.

Screenshots go to tests/artifacts/ (git-ignored). `DOCS_SCREENSHOT=1` also writes docs/screenshot.png and
docs/timeline.png.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from live import live_app
from playwright.sync_api import Locator, Page, expect, sync_playwright

from qa.embed import Embedder
from qa.reply import NOT_FOUND
from qa.web import ChatApp

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--no-first-run", "--disable-quic",
]
ARTIFACTS = Path(__file__).parent / "artifacts"
DOCS = Path(__file__).resolve().parent.parent / "docs"
WAIT_MS = 60_000
STORY = Path(__file__).parent / "fixtures" / "timeline"  # dated articles of one story, a near-copy, an undated one
MADURO = "Venezuela’s Maduro Opens Door to U.S. Negotiations Amid Military Pressure"
HOSTILE = """# Exampleton bridge <img src=x onerror="window.__xss='title'; alert('title')"> approved

The city council of Exampleton approved a new bicycle bridge over the river Ouse on Tuesday.
<script>window.__xss = 'script'; alert('script')</script>
Critics collected signatures in [a petition](javascript:window.__xss='link';alert('link')) against the plan.
<img src=x onerror="window.__xss='img'; alert('img')"> The bridge will cost 4 million euros and open in 2027.
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[tuple[ChatApp, str]]:
    with live_app(tmp_path_factory.mktemp("browser"), embedder, watch=1.0) as (chat, url):
        yield chat, url


@pytest.fixture(scope="module")
def dialogs() -> list[str]:
    """Messages of any alert() the page opened: there must be none."""
    return []


@pytest.fixture(scope="module")
def page(server: tuple[ChatApp, str], dialogs: list[str]) -> Iterator[Page]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.skip(f"{CHROMIUM} is missing: `make chromium` installs Debian's chromium")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
        tab.goto(server[1])
        tab.wait_for_selector("#question textarea", timeout=WAIT_MS)
        yield tab
        browser.close()


def ask(page: Page, question: str) -> Locator:
    """Type a question, press Enter, and wait for the reply; returns the reply's element."""
    replies = page.locator("#chat [data-testid=bot]")
    before = replies.count()
    page.locator("#question textarea").fill(question)
    page.locator("#question textarea").press("Enter")
    expect(replies).to_have_count(before + 1, timeout=WAIT_MS)
    return replies.nth(before)


def new_conversation(page: Page) -> None:
    page.locator("#new-conversation").click()
    expect(page.locator("#chat [data-testid=bot]")).to_have_count(0, timeout=WAIT_MS)


def upload(page: Page, path: Path) -> None:
    """Upload a file and wait until its sync is done (the status names the file, then says Ready)."""
    page.locator("#upload input[type=file]").set_input_files(str(path))
    status = page.locator("#upload-status")
    expect(status).to_contain_text(path.name, timeout=WAIT_MS)
    expect(status).to_contain_text("Ready", timeout=WAIT_MS)


def set_sources(page: Page, count: int) -> None:
    """Set "Sources per answer" (its number box) to `count`."""
    box = page.locator("#sources input[type=number]")
    box.fill(str(count))
    box.press("Enter")
    expect(page.locator("#sources input[type=range]")).to_have_value(str(count))


def test_a_question_gets_a_quoted_answer_with_its_cited_title_and_passage(page: Page) -> None:
    new_conversation(page)
    reply = ask(page, "Who interviewed Maduro?")
    expect(reply).to_contain_text("Sources")
    expect(reply).to_contain_text("Ignacio Ramonet")
    expect(reply).to_contain_text("[1]")
    expect(reply.locator("ol li strong").first).to_contain_text(MADURO)
    expect(reply.locator("mark").first).to_contain_text("Speaking in a New Year’s Eve interview with Spanish")
    page.screenshot(path=str(ARTIFACTS / "answer.png"))
    if os.environ.get("DOCS_SCREENSHOT"):
        DOCS.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS / "screenshot.png"))


def test_a_follow_up_question_uses_the_conversation(page: Page) -> None:
    new_conversation(page)
    ask(page, "Who interviewed Maduro?")
    reply = ask(page, "When did it air?")
    expect(reply).to_contain_text("New Year’s Eve")
    expect(reply).to_contain_text("Follow-up: searched as")
    new_conversation(page)
    expect(ask(page, "When did it air?")).not_to_contain_text("Follow-up")  # a new conversation starts afresh


def test_an_article_uploaded_through_the_page_answers_questions(page: Page, tmp_path: Path) -> None:
    article = tmp_path / "ferry.md"
    article.write_text(
        "# Lake Zurich paddle steamer runs on solar power\n\n"
        "The oldest paddle steamer on Lake Zurich, the Stadt Rapperswil, now runs partly on solar power after "
        "engineers fitted 40 panels to its roof, the operator ZSG said on Monday.\n"
    )
    upload(page, article)
    expect(page.locator("#upload-status")).to_contain_text("ferry.md: saved as ferry.md (1 article)")
    expect(page.locator("#index-panel")).to_contain_text("Lake Zurich paddle steamer runs on solar power")
    new_conversation(page)
    reply = ask(page, "Which paddle steamer now runs on solar power?")
    expect(reply).to_contain_text("Stadt Rapperswil")
    expect(reply.locator("ol li strong").first).to_contain_text("Lake Zurich paddle steamer runs on solar power")
    page.screenshot(path=str(ARTIFACTS / "upload.png"))


def test_scripts_and_links_in_an_article_show_as_text_and_never_run(
    page: Page, tmp_path: Path, dialogs: list[str]
) -> None:
    article = tmp_path / "exampleton.md"
    article.write_text(HOSTILE)
    upload(page, article)
    new_conversation(page)
    reply = ask(page, "How much will the Exampleton bicycle bridge cost?")
    expect(reply).to_contain_text("4 million euros")
    expect(reply).to_contain_text("<script>window.__xss = 'script'; alert('script')</script>")
    expect(reply).to_contain_text("[a petition](javascript:window.__xss='link';alert('link'))")
    expect(reply).to_contain_text("""<img src=x onerror="window.__xss='img'; alert('img')">""")
    expect(page.locator("#index-panel")).to_contain_text("""Exampleton bridge <img src=x onerror=""")
    page.screenshot(path=str(ARTIFACTS / "hostile-article.png"))
    assert page.locator("#chat script, #index-panel script").count() == 0
    assert page.locator("img[onerror], [onerror]").count() == 0
    assert page.locator("a[href^='javascript' i]").count() == 0
    assert page.evaluate("() => window.__xss") is None
    assert dialogs == []


@pytest.mark.parametrize("question", ["What were the football results last night?", "How do I bake a chocolate cake?"])
def test_an_off_topic_question_gets_not_found_with_weak_matches(page: Page, question: str) -> None:
    new_conversation(page)
    reply = ask(page, question)
    expect(reply).to_contain_text(NOT_FOUND)
    expect(reply).to_contain_text("Nearest passages (weak matches)")
    expect(reply).to_contain_text("weak match")
    page.screenshot(path=str(ARTIFACTS / f"not-found-{question.split()[3]}.png"))


def test_html_and_markdown_typed_as_a_question_show_as_text_and_never_run(page: Page, dialogs: list[str]) -> None:
    new_conversation(page)
    question = """<img src=x onerror="window.__xss='question'; alert(1)"> [go](javascript:alert(2)) """
    question += "Who interviewed Maduro?"
    reply = ask(page, question)
    expect(reply).to_contain_text("Ignacio Ramonet")
    expect(page.locator("#chat [data-testid=user]").last).to_contain_text("<img src=x onerror=")
    assert page.locator("#chat img[onerror], #chat a[href^='javascript' i]").count() == 0
    assert page.evaluate("() => window.__xss") is None
    assert dialogs == []


TANKER = "US seizes third Venezuelan oil tanker as Maduro offers talks"
TANKER_URL = "https://example.org/world/venezuela-tanker-seized"
FOLLOW_UP = f"""# {TANKER}

url: {TANKER_URL}
date: 2026-01-03

The United States seized a third tanker carrying sanctioned Venezuelan oil on Friday, tightening the blockade of oil
tankers entering or leaving Venezuela. President Nicolás Maduro called the seizure piracy, but repeated that his
government was ready to negotiate a drug-trafficking agreement with Washington and to welcome US oil investment.

American forces have struck suspected drug-trafficking boats in the Caribbean since September, and the Trump
administration accuses Maduro's government of funding terrorism with oil revenue. Analysts in Caracas said the
pressure on Venezuela's economy made talks more likely.
"""


def test_more_on_this_story_links_to_another_article_on_the_story(page: Page, tmp_path: Path) -> None:
    article = tmp_path / "tanker-seized.md"
    article.write_text(FOLLOW_UP)
    upload(page, article)
    new_conversation(page)
    set_sources(page, 3)  # three passages of the Maduro article: the follow-up is not cited itself
    try:
        reply = ask(page, "Who interviewed Maduro?")
    finally:
        set_sources(page, 5)
    more = reply.locator("p", has_text="More on this story")
    expect(more).to_have_count(1)  # under the first source of the article, not again under its other passages
    expect(more).to_have_text(f"More on this story: {TANKER} (2026-01-03)")
    link = more.get_by_role("link", name=TANKER)
    expect(link).to_have_attribute("href", TANKER_URL)
    page.context.route(TANKER_URL, lambda route: route.fulfill(content_type="text/html", body="<title>Tanker</title>"))
    try:
        with page.context.expect_page() as opened:
            link.click()
        story = opened.value
        story.wait_for_load_state()
        assert story.url == TANKER_URL, "the link opens the article's own page, in a new tab"
        story.close()
    finally:
        page.context.unroute(TANKER_URL)
    expect(page.locator("#question textarea")).to_be_visible()  # the chat stays where it was


def download(page: Page, button: str) -> tuple[str, str]:
    """Click a download button; returns the file's suggested name and its text."""
    with page.expect_download() as started:
        page.locator(button).click()
    saved = started.value
    return saved.suggested_filename, Path(saved.path()).read_text(encoding="utf-8")


def test_the_conversation_downloads_as_markdown_and_as_json(page: Page) -> None:
    new_conversation(page)
    expect(page.locator("#save-markdown")).to_be_disabled()
    ask(page, "Who interviewed Maduro?")
    ask(page, "When did it air?")
    name, markdown = download(page, "#save-markdown")
    assert name == "conversation.md"
    assert markdown.startswith("# Conversation with the news articles assistant\n\n## 1. Who interviewed Maduro?\n")
    first, second = markdown.split("\n## 2. When did it air?\n")
    assert "Ignacio Ramonet" in first and "[1]" in first and "**Sources**" in first
    assert f"1. [{MADURO}](https://" not in first, "the seed article has no url: its title is plain text"
    assert f"1. {MADURO} · venezuela-maduro-us-negotiations.txt" in first
    assert "   > Speaking in a New Year’s Eve interview with Spanish journalist Ignacio Ramonet" in first
    assert "*Follow-up: searched as “" in second and "New Year’s Eve" in second
    name, text = download(page, "#save-json")
    assert name == "conversation.json"
    turns = json.loads(text)["turns"]
    assert [turn["question"] for turn in turns] == ["Who interviewed Maduro?", "When did it air?"]
    assert turns[0]["found"] and "Ramonet" in turns[0]["answer"] and turns[0]["answer"].endswith("]")
    assert turns[0]["sources"][0]["title"] == MADURO and turns[0]["sources"][0]["quoted"]
    new_conversation(page)
    expect(page.locator("#save-json")).to_be_disabled()


def test_the_timeline_button_lists_the_story_by_date_with_undated_articles_apart(
    page: Page, server: tuple[ChatApp, str]
) -> None:
    chat = server[0]
    shutil.copytree(STORY, chat.library.settings.articles_dir / "timeline")
    assert chat.background.wait(chat.background.request(), timeout=WAIT_MS / 1000)
    new_conversation(page)
    ask(page, "What happened to the Kelvin footbridge?")
    page.locator("#chat button.option", has_text="Timeline").click()
    replies = page.locator("#chat [data-testid=bot]")
    expect(replies).to_have_count(2, timeout=WAIT_MS)
    expect(page.locator("#chat [data-testid=user]").last).to_have_text(
        "Timeline: What happened to the Kelvin footbridge?"
    )
    timeline = replies.nth(1)
    expect(timeline).to_contain_text("(4 dated, 1 undated)")
    dated, undated = timeline.locator("ul").nth(0).locator("li"), timeline.locator("ul").nth(1).locator("li")
    expect(dated).to_have_count(4)
    expect(dated).to_contain_text([
        re.compile(r"^2025-02-03 · “.*” — Cracks found in Kelvin footbridge .*Also in: Footbridge cracks found", re.S),
        re.compile(r"^2025-02-10 · “.*” — Kelvin footbridge closed for repairs .*Also in: .*2025-02-11", re.S),
        re.compile(r"^2025-04-22 · “Hundreds of cyclists crossed the Kelvin footbridge .*” — Cyclists return"),
        re.compile(r"^2025-04-22 · “The Kelvin footbridge reopened on Tuesday .*” — Kelvin footbridge reopens"),
    ])
    expect(undated).to_have_count(1)
    expect(undated).to_contain_text(re.compile(r"^“The closure of the Kelvin footbridge .*” — Ten weeks without"))
    expect(timeline).not_to_contain_text("Cider festival")
    page.screenshot(path=str(ARTIFACTS / "timeline.png"))
    if os.environ.get("DOCS_SCREENSHOT"):
        page.screenshot(path=str(DOCS / "timeline.png"))


def test_rating_an_answer_and_a_source_makes_a_question_of_the_evaluation_set(
    page: Page, server: tuple[ChatApp, str], tmp_path: Path
) -> None:
    library = server[0].library
    library.ratings.path.unlink(missing_ok=True)
    new_conversation(page)
    ask(page, "Who interviewed Maduro?")
    status = page.locator("#rate-status")
    page.locator("#chat").get_by_role("button", name="Like", exact=True).last.click()
    expect(status).to_have_text("Rated the answer to “Who interviewed Maduro?” as helpful.")
    page.locator("#rate-source label").nth(1).click()  # source [2]
    page.locator("#rate-wrong").click()
    expect(status).to_have_text("Rated source [2] of the answer to “Who interviewed Maduro?” as wrong.")
    expect(page.locator("#index-panel")).to_contain_text(
        "Ratings: 1 answer rated, 100% helpful · 1 source rated, 0% helpful"
    )
    shown = library.answer("Who interviewed Maduro?", 5)  # what the page showed: the same question, 5 sources
    done = library.export_ratings(tmp_path / "rated")
    assert (done.answerable, done.off_topic, done.kept_apart) == (1, 0, 0)
    (record,) = [json.loads(line) for line in (tmp_path / "rated" / "questions.jsonl").read_text().splitlines()]
    assert record["question"] == "Who interviewed Maduro?" and record["answer_rating"] == 1
    assert record["answers"] == [quote.text for quote in shown.quotes if quote.number != 2]
    assert any("Ignacio Ramonet" in sentence for sentence in record["answers"])
    wrong = shown.sources[1].hit.citation
    assert [(n["article_id"], n["start"], n["end"]) for n in record["hard_negatives"]] == [
        (wrong.article_id, wrong.start, wrong.end)
    ]
