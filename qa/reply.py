"""The chat reply for an `Answer` (quoted sentences with `[n]` markers, then the sources) or a `Timeline`, as Markdown.

Article text is untrusted. Everything taken from it is escaped so that it renders as exactly that
text (no HTML, links, emphasis or lists), and only http(s) urls become links. The only markup in a
reply is ours: bold, the numbered list, block quotes and `<mark>` around highlighted sentences.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping, Sequence
from urllib.parse import quote as url_quote
from urllib.parse import urlsplit

from .answer import NOT_FOUND
from .schema import Answer, Citation, Related, Source, Timeline, TimelineEntry

_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#|~$!^])")
_AUTOLINK = re.compile(r"://|\bwww\.", re.IGNORECASE)  # GFM turns these into links even in plain text
_LINE_START = re.compile(r"^[ \t]*(?:[-+=]|\d{1,9}[.)])", re.MULTILINE)  # list items, setext underlines


def escape_markdown(text: str) -> str:
    """Untrusted text as Markdown that renders as exactly that text: no HTML, links, or formatting."""
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", text)
    escaped = _AUTOLINK.sub(lambda found: found.group().replace(":", "\\:").replace(".", "\\."), escaped)
    escaped = _LINE_START.sub(lambda found: found.group()[:-1] + "\\" + found.group()[-1], escaped)
    return html.escape(escaped, quote=False)


def safe_url(url: str | None) -> str | None:
    """An http(s) URL fit for a Markdown link target, or None (javascript:, data:, relative...)."""
    if not url:
        return None
    url = url.strip()
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url_quote(url, safe=":/?#[]@!$&'*+,;=%~").replace("(", "%28").replace(")", "%29").replace("'", "%27")


def fragment_link(url: str | None, sentence: str | None) -> str | None:
    """`url` with a text fragment (`#:~:text=start,end`) that makes the browser scroll to `sentence`."""
    base = safe_url(url)
    if base is None or not sentence:
        return base
    words = sentence.split()
    if len(words) <= 8:
        directive = _fragment_part(" ".join(words))
    else:
        directive = f"{_fragment_part(' '.join(words[:4]))},{_fragment_part(' '.join(words[-4:]))}"
    return f"{base}{':~:' if '#' in base else '#:~:'}text={directive}"


def _fragment_part(text: str) -> str:
    return url_quote(text, safe="").replace("-", "%2D")


def to_markdown(answer: Answer, related: Mapping[int, Sequence[Related]] | None = None) -> str:
    """The chat reply: short answer with `[n]` markers, then the numbered sources.

    `related`: source number -> the articles to list under it as "More on this story".
    """
    if not answer.sources:
        return (
            "The index has no articles yet. Add .txt, .md, .html, .json or .jsonl articles to the articles "
            "folder (or upload them on this page), then ask again."
        )
    lines: list[str] = []
    if answer.found:
        lines.append(" ".join(f"{_flat(quote.text)} [{quote.number}]" for quote in answer.quotes))
    else:
        why = (
            f"The articles found never mention {escape_markdown(', '.join(answer.unknown))}." if answer.unknown else
            f"None of the passages matches the question well (best similarity {answer.best:.2f}, needed "
            f"{answer.threshold:.2f})."
        )
        lines.append(f"**{NOT_FOUND}** {why} The nearest passages are below, marked as weak matches.")
    if answer.follow_up:
        lines.append(f"\n*Follow-up: searched as “{escape_markdown(answer.query)}”*")
    lines.append("\n**Sources**" if answer.found else "\n**Nearest passages (weak matches)**")
    for source in answer.sources:
        lines.append("")
        lines.extend(_source_lines(source))
        if related and related.get(source.number):
            lines += ["", f"   {more_on_this_story(related[source.number])}"]
    return "\n".join(lines)


def timeline_markdown(timeline: Timeline) -> str:
    """The chat reply for a timeline: one item per entry (date, the quoted sentence, where it is), oldest
    first, then the undated entries under their own heading."""
    topic = escape_markdown(timeline.topic)
    if not timeline.found:
        return (
            f"**{NOT_FOUND}** No sentence about “{topic}” is close enough for a timeline (best similarity "
            f"{timeline.best:.2f}, needed {timeline.threshold:.2f})."
        )
    counts = f"{len(timeline.dated)} dated, {len(timeline.undated)} undated"
    if timeline.omitted:
        counts += f"; {timeline.omitted} less similar left out"
    lines = [f"**Timeline: {topic}** ({counts})", ""]
    lines += [_entry_lines(entry) for entry in timeline.dated]
    if timeline.undated:
        lines += ["", "**Undated**", ""] + [_entry_lines(entry) for entry in timeline.undated]
    return "\n".join(lines)


def _entry_lines(entry: TimelineEntry) -> str:
    cited = entry.citation
    when = f"**{escape_markdown(entry.date)}** · " if entry.date else ""
    line = f"- {when}“{_flat(entry.text)}” — {_cited(cited, entry.text, dated=False)}"
    if entry.also_in:  # a copy may word the sentence a little differently: its link has no text fragment
        line += "\n  Also in: " + "; ".join(_cited(other, None, dated=True) for other in entry.also_in)
    return line


def _cited(cited: Citation, sentence: str | None, dated: bool) -> str:
    """Title (linked to `sentence` in the original page), the date when asked, publisher, paragraph and
    character span."""
    link = fragment_link(cited.url, sentence)
    title = escape_markdown(cited.title or cited.source)
    parts = [part for part in (cited.date if dated else None, cited.publisher) if part]
    parts.append(f"paragraph {cited.paragraph + 1}, characters {cited.start}-{cited.end}")
    if not link:
        parts.append(cited.source)
    return f"{f'[{title}]({link})' if link else title} ({escape_markdown(', '.join(parts))})"


def more_on_this_story(articles: Sequence[Related]) -> str:
    """One line: each article's title (linked to its page when it has an http(s) url) and date."""
    shown = []
    for article in articles:
        title = escape_markdown(" ".join((article.title or article.source).split()))
        link = safe_url(article.url)
        when = f" ({escape_markdown(article.date)})" if article.date else ""
        shown.append((f"[{title}]({link})" if link else title) + when)
    return "*More on this story:* " + " · ".join(shown)


def _source_lines(source: Source) -> list[str]:
    cited = source.hit.citation
    support = source.support
    link = fragment_link(cited.url, support.text if support else None)
    title = escape_markdown(cited.title or cited.source)
    heading = f"[{title}]({link})" if link else title
    details = [part for part in (cited.date, cited.publisher) if part]
    details.append(f"paragraph {cited.paragraph + 1}, passage {cited.passage + 1}")
    details.append(f"relevance {source.relevance:.2f} (search score {source.hit.score:.3g})")
    if not link:
        details.append(cited.source)
    meta = " · ".join(escape_markdown(part) for part in details)
    weak = " · ⚠️ *weak match*" if source.weak else ""
    lines = [f"{source.number}. **{heading}** · {meta}{weak}"]
    if source.hit.also_in:
        copies = "; ".join(f"{other.title} ({other.source})" for other in source.hit.also_in)
        lines.append(f"   Also in: {escape_markdown(copies)}")
    lines.append(f"   > {_highlighted(source)}")
    return lines


def _highlighted(source: Source) -> str:
    """The passage as one quoted paragraph with its highlighted sentences marked."""
    text = source.hit.text
    pieces: list[str] = []
    at = 0
    for quote in source.highlights:
        pieces += [_flat(text[at : quote.start]), f"<mark>{_flat(quote.text)}</mark>"]
        at = quote.end
    pieces.append(_flat(text[at:]))
    return " ".join(piece for piece in pieces if piece)


def _flat(text: str) -> str:
    """Escaped, on one line: white space runs shown as one space (as a browser shows them anyway)."""
    return escape_markdown(" ".join(text.split()))
