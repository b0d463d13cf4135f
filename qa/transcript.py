"""A conversation's answers as a file to keep: Markdown for people, JSON for programs, with the same content.

Each turn has the question, the short answer with its `[n]` markers, and the numbered sources: title,
date, publisher, link and the sentences quoted from it. Article text and questions are untrusted: in
the Markdown they are escaped as in the chat (`qa.reply.escape_markdown`) and only http(s) urls become
links; the JSON keeps the exact text.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from .answer import NOT_FOUND
from .hashing import digest
from .reply import escape_markdown, fragment_link
from .schema import Answer, Source

FORMAT = "qa-conversation/1"  # the JSON's "format": changes when its structure does
TITLE = "Conversation with the news articles assistant"


def transcript_json(answers: Sequence[Answer]) -> dict[str, object]:
    """The conversation as plain data: `{"format", "turns": [{"question", "query", "found", "answer",
    "quotes": [{"source", "text"}], "sources": [{"number", "article_id", "title", "date", "publisher",
    "source", "url", "link", "quoted", "weak"}]}]}`. `answer` is the quoted sentences each followed by its
    `[n]` marker, or the not-found sentence; `link` is the url scrolled to the quoted sentence."""
    return {"format": FORMAT, "turns": [_turn(answer) for answer in answers]}


def _turn(answer: Answer) -> dict[str, object]:
    return {
        "question": answer.question,
        "query": answer.query,
        "found": answer.found,
        "answer": answer_text(answer),
        "quotes": [{"source": quote.number, "text": quote.text} for quote in answer.quotes],
        "sources": [_source(source) for source in answer.sources],
    }


def _source(source: Source) -> dict[str, object]:
    cited = source.hit.citation
    return {
        "number": source.number,
        "article_id": cited.article_id,
        "title": cited.title,
        "date": cited.date,
        "publisher": cited.publisher,
        "source": cited.source,
        "url": cited.url,
        "link": _link(source),
        "quoted": [quote.text for quote in source.highlights],
        "weak": source.weak,
    }


def answer_text(answer: Answer) -> str:
    """The short answer as plain text: each quoted sentence (white space folded) and its `[n]` marker."""
    if not answer.found:
        return NOT_FOUND
    return " ".join(f"{_folded(quote.text)} [{quote.number}]" for quote in answer.quotes)


def transcript_markdown(answers: Sequence[Answer]) -> str:
    """The conversation as Markdown: a `##` heading per question, its answer, then its numbered sources."""
    lines = [f"# {TITLE}"]
    if not answers:
        lines += ["", "No questions were asked."]
    for turn, answer in enumerate(answers, 1):
        lines += ["", f"## {turn}. {escape_markdown(_folded(answer.question))}", ""]
        if answer.follow_up:
            lines += [f"*Follow-up: searched as “{escape_markdown(_folded(answer.query))}”*", ""]
        if answer.found:
            lines.append(" ".join(f"{escape_markdown(_folded(q.text))} [{q.number}]" for q in answer.quotes))
        else:
            lines.append(f"**{NOT_FOUND}**")
        if answer.sources:
            lines += ["", "**Sources**" if answer.found else "**Nearest passages (weak matches)**", ""]
        for source in answer.sources:
            lines += _source_lines(source)
    return "\n".join(lines) + "\n"


def _source_lines(source: Source) -> list[str]:
    cited = source.hit.citation
    title = escape_markdown(_folded(cited.title or cited.source))
    link = _link(source)
    details = [part for part in (cited.date, cited.publisher) if part]
    if not link:
        details.append(cited.source)
    line = f"{source.number}. {f'[{title}]({link})' if link else title}"
    line += "".join(f" · {escape_markdown(part)}" for part in details) + (" · *weak match*" if source.weak else "")
    return [line, *(f"   > {escape_markdown(_folded(quote.text))}" for quote in source.highlights)]


def _link(source: Source) -> str | None:
    support = source.support
    return fragment_link(source.hit.citation.url, support.text if support else None)


def _folded(text: str) -> str:
    return " ".join(text.split())


def save_transcript(answers: Sequence[Answer], folder: Path, keep_seconds: float = 3600.0) -> tuple[Path, Path]:
    """Write `conversation.md` and `conversation.json` into a subfolder of `folder` named after their
    content; returns their paths. Subfolders older than `keep_seconds` are deleted first."""
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in folder.iterdir():
        with contextlib.suppress(OSError):  # another thread may be deleting it too
            if old.is_dir() and now - old.stat().st_mtime > keep_seconds:
                shutil.rmtree(old)
    markdown = transcript_markdown(answers)
    data = json.dumps(transcript_json(answers), ensure_ascii=False, indent=2) + "\n"
    target = folder / digest(markdown + data)[:16]
    target.mkdir(exist_ok=True)
    paths = target / "conversation.md", target / "conversation.json"
    for path, text in zip(paths, (markdown, data), strict=True):
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", dir=target, delete=False, suffix=".tmp") as file:
            file.write(text)
        os.replace(file.name, path)
    return paths
