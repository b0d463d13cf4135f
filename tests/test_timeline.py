"""A story's timeline: quoted sentences by date, near-copies once, undated articles apart, only relevant ones.

The articles (tests/fixtures/timeline) tell one story on four dates: cracks found in the Kelvin footbridge
(and a wire copy of that report a day later), its closure (and a lightly edited copy in another paper a day
later), and its reopening (two articles on one day); an undated look back; and an unrelated cider festival.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from test_cli import qa

from qa import Library, Settings, Timeline
from qa.answer import NOT_FOUND, NOT_FOUND_THRESHOLD
from qa.articles import load_folder
from qa.embed import Embedder
from qa.errors import QuestionError
from qa.passages import paragraphs
from qa.reply import timeline_markdown
from qa.terminal import json_text
from qa.timeline import make_timeline, requested_topic, topic_for

STORY_ARTICLES = Path(__file__).parent / "fixtures" / "timeline"
STORY = "the Kelvin footbridge"
DATED = [  # (date, title) as the timeline lists them: by date, the same day by title
    ("2025-02-03", "Cracks found in Kelvin footbridge"),
    ("2025-02-10", "Kelvin footbridge closed for repairs"),
    ("2025-04-22", "Cyclists return to the Kelvin footbridge"),
    ("2025-04-22", "Kelvin footbridge reopens after repairs"),
]
UNDATED = ["Ten weeks without the Kelvin footbridge"]
UNRELATED = "Cider festival draws a record crowd"


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[Library]:
    """A built index over a copy of the story's articles."""
    root = tmp_path_factory.mktemp("timeline")
    shutil.copytree(STORY_ARTICLES, root / "articles")
    library = Library(Settings(articles_dir=root / "articles", index_dir=root / "index"), embedder=embedder)
    library.sync()
    yield library
    library.store.close()


@pytest.fixture(scope="module")
def timeline(story: Library) -> Timeline:
    return story.timeline(STORY)


def test_entries_are_in_date_order_the_same_day_by_title_and_undated_articles_apart(timeline: Timeline) -> None:
    assert [(entry.date, entry.citation.title) for entry in timeline.dated] == DATED
    assert [entry.citation.title for entry in timeline.undated] == UNDATED
    assert timeline.undated[0].date is None and timeline.found and timeline.omitted == 0


def test_each_entry_quotes_one_sentence_at_its_exact_span_and_paragraph(story: Library, timeline: Timeline) -> None:
    bodies = {article.article_id: article.text for article in load_folder(story.settings.articles_dir).articles}
    for entry in (*timeline.dated, *timeline.undated):
        assert bodies[entry.citation.article_id][entry.citation.start : entry.citation.end] == entry.text
        assert entry.text.endswith(".") and "\n" not in entry.text  # one sentence
        for cited in (entry.citation, *entry.also_in):
            begin, end = paragraphs(bodies[cited.article_id])[cited.paragraph]
            assert begin <= cited.start < cited.end <= end
    closure = timeline.dated[1]
    assert closure.citation.paragraph == 1  # the second paragraph of its article


def test_near_copies_are_one_entry_dated_by_the_earliest_and_citing_every_article(
    story: Library, timeline: Timeline
) -> None:
    cracks, closure = timeline.dated[0], timeline.dated[1]
    assert [(cited.article_id, cited.date) for cited in cracks.also_in] == [("briefs.jsonl#cracks", "2025-02-04")]
    assert [(cited.source, cited.date) for cited in closure.also_in] == [("closure-evening-post.txt", "2025-02-11")]
    copy = (story.settings.articles_dir / "closure-evening-post.txt").read_text()
    edited = closure.also_in[0]
    assert copy[copy.index("The Kelvin") :][edited.start : edited.end] in {  # the copy's own sentence, not ours
        "The Kelvin footbridge was closed to walkers and cyclists on Monday after engineers warned that its "
        "cracked hangers might fail.",
        "Repairs should take ten weeks and cost £2.4 million, the council said.",
    }
    texts = [entry.text for entry in (*timeline.dated, *timeline.undated)]
    assert len(texts) == len(set(texts)) == len(DATED) + len(UNDATED)


def test_only_sentences_above_the_not_found_bar_are_shown(story: Library, timeline: Timeline) -> None:
    assert all(entry.match >= NOT_FOUND_THRESHOLD for entry in (*timeline.dated, *timeline.undated))
    titles = {entry.citation.title for entry in (*timeline.dated, *timeline.undated)}
    assert UNRELATED not in titles
    without_bar = make_timeline(story, STORY, threshold=-1.0)
    assert UNRELATED in {entry.citation.title for entry in without_bar.dated}  # the bar is what leaves it out


def test_a_topic_the_articles_do_not_cover_gets_an_empty_timeline_that_says_so(story: Library) -> None:
    nothing = story.timeline("chocolate cake recipes")
    assert not nothing.found and nothing.dated == nothing.undated == ()
    assert nothing.best < NOT_FOUND_THRESHOLD
    assert timeline_markdown(nothing).startswith(f"**{NOT_FOUND}** No sentence about “chocolate cake recipes”")


def test_a_limit_keeps_the_most_similar_entries_still_in_date_order(story: Library, timeline: Timeline) -> None:
    everything = [*timeline.dated, *timeline.undated]
    best_two = sorted(everything, key=lambda entry: -entry.match)[:2]
    short = story.timeline(STORY, limit=2)
    assert {entry.text for entry in short.dated + short.undated} == {entry.text for entry in best_two}
    assert [entry.date for entry in short.dated] == sorted(entry.date for entry in short.dated)
    assert short.omitted == len(everything) - 2


def test_the_same_topic_gives_the_same_timeline_and_a_request_is_read_as_its_topic(
    story: Library, timeline: Timeline
) -> None:
    again = story.timeline("How did the Kelvin footbridge unfold?")
    assert again.topic == STORY
    assert {**again.to_json(), "seconds": 0} == {**timeline.to_json(), "seconds": 0}


@pytest.mark.parametrize(
    ("question", "topic"),
    [
        ("Timeline of the Kelvin footbridge", "the Kelvin footbridge"),
        ("show me a timeline for the rail strike.", "the rail strike"),
        ("What's the timeline of Brexit?", "Brexit"),
        ("How did the rail strike unfold?", "the rail strike"),
        ("how has the ECB's rate policy  developed", "the ECB's rate policy"),
        ("Who interviewed Maduro?", None),
        ("What is a timeline?", None),
        ("How did the team win the final?", None),
    ],
)
def test_timeline_requests_are_recognized(question: str, topic: str | None) -> None:
    assert requested_topic(question) == topic


def test_the_topic_of_a_question_follows_the_conversation() -> None:
    assert topic_for("Who interviewed Maduro?") == "Who interviewed Maduro?"  # the Timeline button's topic
    assert topic_for("When did it air?", ["Who interviewed Maduro?"]) == "Who interviewed Maduro? When did it air?"
    assert topic_for("How did it unfold?", ["What did the ECB decide?"]) == "What did the ECB decide? it"
    assert topic_for("Timeline of the rail strike", ["Who interviewed Maduro?"]) == "the rail strike"


@pytest.mark.parametrize(
    ("topic", "limit", "message"),
    [
        ("", 20, "The topic is empty"),
        (" \n\t ", 20, "The topic is empty"),
        (None, 20, "The topic must be text"),
        ("x" * 2001, 20, "The topic is 2,001 characters long; name it in at most 2,000"),
        ("y " * 100_001, 20, "The topic is 200,002 characters long"),
        (STORY, 0, r"The limit must be a whole number from 1 to 100 \(got 0\)"),
        (STORY, 101, r"\(got 101\)"),
        (STORY, 10**20, r"\(got int\)"),
        (STORY, True, r"\(got True\)"),
        (STORY, 2.5, r"\(got 2.5\)"),
    ],
    ids=["empty", "blank", "not-text", "long", "huge", "zero", "over-100", "huge-limit", "bool", "fraction"],
)
def test_bad_input_gets_a_clear_error(story: Library, topic: object, limit: object, message: str) -> None:
    with pytest.raises(QuestionError, match=message):
        story.timeline(topic, limit)  # type: ignore[arg-type]


def test_the_chat_reply_lists_entries_by_date_with_copies_and_escapes_article_text(timeline: Timeline) -> None:
    reply = timeline_markdown(timeline)
    assert reply.startswith(f"**Timeline: {STORY}** (4 dated, 1 undated)")
    at = [reply.index(title) for _, title in DATED] + [reply.index("**Undated**"), reply.index(UNDATED[0])]
    assert at == sorted(at)
    assert "  Also in: [Kelvin footbridge closed for repairs](" not in reply  # the copy has no url: no link
    assert "  Also in: Kelvin footbridge closed for repairs (2025-02-11, Example Evening Post, paragraph 2" in reply
    assert "[Kelvin footbridge reopens after repairs](https://example.org/local/kelvin-reopens#:~:text=" in reply
    entry = timeline.dated[0]
    hostile = replace(entry.citation, title='<img src=x onerror="alert(1)"> [x](javascript:alert(2))',
                      url="javascript:alert(3)")
    text = "<script>alert(4)</script> **bold** ended."
    reply = timeline_markdown(replace(timeline, dated=(replace(entry, text=text, citation=hostile),), undated=()))
    assert "<img" not in reply and "<script" not in reply and "](javascript" not in reply and "**bold**" not in reply
    assert "&lt;script&gt;alert\\(4\\)&lt;/script&gt; \\*\\*bold\\*\\* ended." in reply


def test_the_command_prints_the_timeline_and_refuses_bad_input(story: Library) -> None:
    folders = ["--articles", str(story.settings.articles_dir), "--index", str(story.settings.index_dir)]
    printed = qa("timeline", "How did the Kelvin footbridge unfold?", *folders)
    assert printed.returncode == 0, printed.stderr
    lines = printed.stdout.splitlines()
    assert lines[0] == f"Timeline: {STORY} (4 dated, 1 undated)"
    dated = [at for at, line in enumerate(lines) if line[:4] == "2025"]
    assert [lines[at][:10] for at in dated] == [date for date, _ in DATED]
    assert max(dated) < lines.index("Undated") < next(at for at, line in enumerate(lines) if UNDATED[0] in line)
    assert "closure.md, paragraph 2, chars 132-217" in printed.stdout
    assert "also in: Kelvin footbridge closed for repairs (closure-evening-post.txt, paragraph 2" in printed.stdout

    refused = qa("timeline", STORY, "--limit", "0", *folders)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip() == "error: The limit must be a whole number from 1 to 100 (got 0)."


def test_the_json_of_a_timeline_has_every_entry_with_its_citation(story: Library) -> None:
    found = json.loads(json_text(story.timeline(STORY, limit=3).to_json()))  # what `qa timeline --json` prints
    assert found["topic"] == STORY and found["found"] is True and found["omitted"] == 2
    assert [entry["date"] for entry in found["dated"]] == sorted(entry["date"] for entry in found["dated"])
    assert {"date", "text", "title", "url", "paragraph", "start", "end", "match", "also_in"} <= set(found["dated"][0])
