"""What the command line prints: answers and hits as readable lines, JSON, and text made safe for a terminal.

Article titles and text, file names and questions are untrusted: everything printed goes through
`terminal_safe` (or `json_text`), so no escape sequence in an article can steer the terminal.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import replace
from typing import TextIO

from .answer import NOT_FOUND
from .schema import Answer, Citation, Hit, Related, Source, Timeline, TimelineEntry

TERMINAL_CONTROL = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|[\x00-\x08\x0b-\x1f\x7f-\x9f]")
C1_CONTROL = re.compile(r"[\x7f-\x9f]")


def terminal_safe(text: str) -> str:
    """`text` fit for a terminal: escape sequences such as "\\x1b[31m" removed whole, and every other C0
    and C1 control character (ESC, carriage return, backspace, "\\x9b"...) removed; newline and tab kept."""
    return TERMINAL_CONTROL.sub("", text)


def say(*parts: object, file: TextIO | None = None) -> None:
    """`print` for everything the commands show: article titles and text, file names and questions are
    untrusted, so the line is made `terminal_safe` first."""
    print(terminal_safe(" ".join(str(part) for part in parts)), file=file or sys.stdout)


def json_text(value: object) -> str:
    """`value` as indented JSON with non-ASCII text kept and C1 controls and DEL escaped (JSON already
    escapes C0): nothing in it can steer a terminal, and a JSON reader gets the exact text back."""
    text = json.dumps(value, ensure_ascii=False, indent=2)
    return C1_CONTROL.sub(lambda found: f"\\u{ord(found.group()):04x}", text)


def format_answer(answer: Answer) -> str:
    """The short answer with [n] markers, then the numbered sources with the quoted sentences marked."""
    if not answer.sources:
        return "No passages: the index is empty. Add articles to the articles folder and run `python -m qa index`."
    if answer.found:
        lines = [" ".join(f"{' '.join(quote.text.split())} [{quote.number}]" for quote in answer.quotes)]
    else:
        why = (f"the articles found never mention {', '.join(answer.unknown)}" if answer.unknown
               else f"best similarity {answer.best:.2f}, needed {answer.threshold:.2f}")
        lines = [f"{NOT_FOUND} ({why}) The nearest passages:"]
    lines.append("")
    for source in answer.sources:
        hit = source.hit
        marked = " ".join(f">>{q.text}<<" if q in source.highlights else q for q in _pieces(hit.text, source))
        lines.append(format_hit(replace(hit, rank=source.number, text=marked)).rstrip("\n"))
        lines.append("")
    return "\n".join(lines).rstrip("\n")


def _pieces(text: str, source: Source) -> list[object]:
    """The passage cut around its highlighted sentences (each highlight kept as its `Quote`)."""
    pieces: list[object] = []
    at = 0
    for quote in source.highlights:
        pieces += [text[at : quote.start].strip(), quote]
        at = quote.end
    pieces.append(text[at:].strip())
    return [piece for piece in pieces if piece]


def format_hit(hit: Hit) -> str:
    """A ranked hit as a few readable lines."""
    cited = hit.citation
    where = (
        f"{cited.source}, paragraph {cited.paragraph + 1}, passage {cited.passage + 1}, chars {cited.start}-{cited.end}"
    )
    lines = [f"[{hit.rank}] {cited.title}  (score {hit.score:.3f})", f"    {where}"]
    if cited.date or cited.url:
        lines.append("    " + "  ".join(part for part in (cited.date, cited.url) if part))
    lines += [f"    also in: {other.title} ({other.source})" for other in hit.also_in]
    lines.append("    " + " ".join(hit.text.split()))
    return "\n".join(lines) + "\n"


def format_timeline(timeline: Timeline) -> str:
    """The timeline as readable lines: each entry's date, quoted sentence and where it is, oldest first,
    then the undated entries."""
    if not timeline.found:
        return (
            f"{NOT_FOUND} No sentence about \"{timeline.topic}\" is close enough for a timeline "
            f"(best similarity {timeline.best:.2f}, needed {timeline.threshold:.2f})."
        )
    lines = [f"Timeline: {timeline.topic} ({len(timeline.dated)} dated, {len(timeline.undated)} undated"
             + (f"; {timeline.omitted} less similar left out)" if timeline.omitted else ")"), ""]
    lines += [_entry(entry) for entry in timeline.dated]
    if timeline.undated:
        lines += ["Undated", ""] + [_entry(entry) for entry in timeline.undated]
    return "\n".join(lines).rstrip("\n")


def _entry(entry: TimelineEntry) -> str:
    indent = " " * 12
    lines = [f"{entry.date or '':<10}  \"{' '.join(entry.text.split())}\"", indent + _where(entry.citation)]
    lines += [f"{indent}also in: {_where(other, dated=True)}" for other in entry.also_in]
    return "\n".join(lines) + "\n"


def _where(cited: Citation, dated: bool = False) -> str:
    """Title, file, paragraph and character span; the url; the date when asked."""
    place = f"{cited.title} ({cited.source}, paragraph {cited.paragraph + 1}, chars {cited.start}-{cited.end})"
    return "  ".join(part for part in (place, cited.date if dated else None, cited.url) if part)


def format_related(rank: int, article: Related) -> str:
    """A related article as two lines: title and similarity; id, date and url."""
    where = "  ".join(part for part in (article.article_id, article.date, article.url) if part)
    return f"[{rank}] {article.title}  (similarity {article.similarity:.3f})\n    {where}"
