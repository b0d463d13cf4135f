"""The conversation as a file: Markdown and JSON with the same turns, [n] markers, sources and escaped text."""

from __future__ import annotations

import json
from pathlib import Path

from qa.answer import NOT_FOUND
from qa.schema import Answer, Citation, Hit, Quote, Source
from qa.transcript import FORMAT, save_transcript, transcript_json, transcript_markdown

BRIDGE = "The council approved the bridge on Tuesday.  It will cost\n4 million euros, the mayor said."
COSTS = "Critics said <script>alert('x')</script> the cost of [the bridge](javascript:alert(1)) would double."
HOSTILE_TITLE = "<img src=x onerror=alert(1)> Bridge *approved*"


def source(number: int, text: str, quoted: list[tuple[int, int]], weak: bool = False, **cited: str | None) -> Source:
    citation = Citation(
        cited.get("article_id") or f"article-{number}.md", cited.get("title") or "", cited.get("source") or "a.md",
        cited.get("url"), cited.get("date"), cited.get("publisher"), passage=0, paragraph=0, start=0, end=len(text),
    )
    highlights = tuple(Quote(number, text[start:end], start, end, 0.5, 0.6) for start, end in quoted)
    return Source(number, Hit(number, 0.9, text, citation), highlights, relevance=0.5, weak=weak)


FIRST = Answer(
    question="Who approved the  bridge?",
    query="Who approved the  bridge?",
    found=True,
    best=0.7,
    threshold=0.35,
    quotes=(Quote(1, BRIDGE[:43], 0, 43, 0.8, 0.7), Quote(2, COSTS, 0, len(COSTS), 0.1, 0.5)),
    sources=(
        source(1, BRIDGE, [(0, 43)], title=HOSTILE_TITLE, url="https://example.org/bridge", date="2025-05-01",
               publisher="Example Wire"),
        source(2, COSTS, [(0, len(COSTS))], title="Bridge costs", source="local/costs.txt", article_id="costs.txt"),
    ),
)
SECOND = Answer(
    question="And the opening date?",
    query="Who approved the  bridge? And the opening date?",
    found=False,
    best=0.2,
    threshold=0.35,
    quotes=(),
    sources=(
        source(1, BRIDGE, [(45, len(BRIDGE))], weak=True, title="Bridge", url="javascript:alert(2)", source="b.md"),
    ),
)

EXPECTED_MARKDOWN = """\
# Conversation with the news articles assistant

## 1. Who approved the bridge?

The council approved the bridge on Tuesday. [1] Critics said &lt;script&gt;alert\\('x'\\)&lt;/script&gt; the cost \
of \\[the bridge\\]\\(javascript:alert\\(1\\)\\) would double. [2]

**Sources**

1. [&lt;img src=x onerror=alert\\(1\\)&gt; Bridge \\*approved\\*](https://example.org/bridge#:~:text=The%20council\
%20approved%20the%20bridge%20on%20Tuesday.) · 2025-05-01 · Example Wire
   > The council approved the bridge on Tuesday.
2. Bridge costs · local/costs.txt
   > Critics said &lt;script&gt;alert\\('x'\\)&lt;/script&gt; the cost of \\[the bridge\\]\\(javascript:\
alert\\(1\\)\\) would double.

## 2. And the opening date?

*Follow-up: searched as “Who approved the bridge? And the opening date?”*

**The articles don't seem to cover this.**

**Nearest passages (weak matches)**

1. Bridge · b.md · *weak match*
   > It will cost 4 million euros, the mayor said.
"""


def test_the_markdown_has_a_heading_per_question_its_marked_answer_and_numbered_sources() -> None:
    assert transcript_markdown([FIRST, SECOND]) == EXPECTED_MARKDOWN


def test_article_text_and_questions_are_escaped_and_only_http_urls_become_links() -> None:
    hostile = Answer("<b>Who</b> [x](javascript:alert(3))?", "<b>Who</b> [x](javascript:alert(3))?", True, 0.7, 0.35,
                     FIRST.quotes, FIRST.sources)
    markdown = transcript_markdown([hostile, SECOND])
    assert "<" not in markdown and "](javascript" not in markdown and "javascript:alert(2)" not in markdown
    assert "## 1. &lt;b&gt;Who&lt;/b&gt; \\[x\\]\\(javascript:alert\\(3\\)\\)?" in markdown


def test_the_json_holds_the_same_turns_as_plain_exact_text() -> None:
    data = transcript_json([FIRST, SECOND])
    assert data["format"] == FORMAT
    first, second = data["turns"]  # type: ignore[misc]
    assert first == {
        "question": "Who approved the  bridge?",
        "query": "Who approved the  bridge?",
        "found": True,
        "answer": f"The council approved the bridge on Tuesday. [1] {COSTS} [2]",
        "quotes": [{"source": 1, "text": BRIDGE[:43]}, {"source": 2, "text": COSTS}],
        "sources": [
            {"number": 1, "article_id": "article-1.md", "title": HOSTILE_TITLE, "date": "2025-05-01",
             "publisher": "Example Wire", "source": "a.md", "url": "https://example.org/bridge",
             "link": "https://example.org/bridge#:~:text=The%20council%20approved%20the%20bridge%20on%20Tuesday.",
             "quoted": [BRIDGE[:43]], "weak": False},
            {"number": 2, "article_id": "costs.txt", "title": "Bridge costs", "date": None, "publisher": None,
             "source": "local/costs.txt", "url": None, "link": None, "quoted": [COSTS], "weak": False},
        ],
    }
    assert second["found"] is False and second["answer"] == NOT_FOUND and second["quotes"] == []
    assert second["query"] != second["question"]
    assert second["sources"][0]["url"] == "javascript:alert(2)" and second["sources"][0]["link"] is None
    assert second["sources"][0]["quoted"] == ["It will cost\n4 million euros, the mayor said."]
    assert json.loads(json.dumps(data)) == data


def test_an_empty_conversation_says_so() -> None:
    assert transcript_markdown([]) == "# Conversation with the news articles assistant\n\nNo questions were asked.\n"
    assert transcript_json([]) == {"format": FORMAT, "turns": []}


def test_saved_files_hold_the_markdown_and_the_json_and_old_ones_are_deleted(tmp_path: Path) -> None:
    markdown, data = save_transcript([FIRST], tmp_path)
    assert (markdown.name, data.name) == ("conversation.md", "conversation.json")
    assert markdown.read_text(encoding="utf-8") == transcript_markdown([FIRST])
    assert json.loads(data.read_text(encoding="utf-8")) == transcript_json([FIRST])
    assert save_transcript([FIRST], tmp_path) == (markdown, data), "the same conversation, the same files"
    longer, _ = save_transcript([FIRST, SECOND], tmp_path, keep_seconds=0)
    assert longer.parent != markdown.parent and not markdown.parent.exists()
    assert [folder.name for folder in tmp_path.iterdir()] == [longer.parent.name]
