"""A story's timeline: the sentences about a topic across all articles, in the order of their articles' dates.

The topic is searched like a question (`qa.search.rank`, copies not merged, so that every article is
cited with its own span). Each passage gives one sentence, the one most similar to the topic, if it
reaches the answer's "not found" bar (`NOT_FOUND_THRESHOLD`, the same measure: "title. sentence"
against the query by the answer encoder, see `topic_similarities`). A sentence found again in other
articles (the same words, or nearly the same sentence vector) is one entry citing every copy, dated
by the earliest. The `limit` most similar entries are kept, ordered by date, then title, article id
and offset; entries from undated articles are listed apart.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from .answer import FOLLOW_UP_WORDS, NOT_FOUND_THRESHOLD, contextual_query
from .dates import read_when
from .errors import QuestionError
from .passages import paragraphs
from .schema import Citation, Hit, Timeline, TimelineEntry
from .scoring import MIN_SENTENCE_WORDS
from .search import MAX_QUESTION_CHARS, check_mode, rank
from .sentences import PassageSentences, PassageText

if TYPE_CHECKING:
    from .assistant import Library
    from .embed import Vectors
    from .store import IndexStore

logger = logging.getLogger(__name__)

TIMELINE_ENTRIES = 20  # entries shown by default
MAX_ENTRIES = 100
MAX_TOPIC_CHARS = MAX_QUESTION_CHARS
PASSAGES_PER_ENTRY = 3  # passages searched per entry asked for (at least MIN_PASSAGES)
MIN_PASSAGES = 30
SAME_SENTENCE = 0.95  # cosine of two sentence vectors above which they are copies of one sentence
_REQUEST = re.compile(
    r"^(?:(?:show|give|make)(?: me)? |what(?:'s|’s| is| was) )?(?:an? |the )?timeline (?:of|for|on|about) "
    r"(?P<topic>.+)$"
    r"|^how (?:did|has|have|had) (?P<subject>.+) (?:unfold|unfolded|develop|developed|evolve|evolved)$",
    re.IGNORECASE,
)
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_NOT_WORD = re.compile(r"\W+")
_TOKEN = re.compile(r"\w+(?:[’'.,-]\w+)*")


def requested_topic(question: object) -> str | None:
    """The X of "timeline of X" or "how did X unfold / develop / evolve" (any case, final punctuation
    ignored); None for any other question."""
    if not isinstance(question, str) or len(question) > MAX_TOPIC_CHARS:
        return None
    found = _REQUEST.match(" ".join(question.split()).rstrip(" ?.!"))
    topic = (found.group("topic") or found.group("subject")).strip(" ,:;-") if found else ""
    return topic or None


def topic_for(question: str, previous: Sequence[str] = ()) -> str:
    """The topic a question asks the timeline of: the X of a timeline request, else the question as its
    answer searched it (a follow-up joined to the questions it follows, see `contextual_query`). A
    requested topic leaning on a pronoun ("how did it unfold?") is joined to the conversation too."""
    topic = requested_topic(question)
    if topic is not None and not any(word in FOLLOW_UP_WORDS for word in topic.lower().split()):
        return topic
    joined = contextual_query(topic or question, previous)
    return joined if len(joined) <= MAX_TOPIC_CHARS else topic or question


def clean_topic(topic: object) -> str:
    """The topic with white space folded and control characters blanked.

    Raises:
        QuestionError: not text, empty, or longer than MAX_TOPIC_CHARS.
    """
    if not isinstance(topic, str):
        raise QuestionError("The topic must be text: name a story, e.g. “the rail strike”.")
    if len(topic) > 50 * MAX_TOPIC_CHARS:
        raise QuestionError(f"The topic is {len(topic):,} characters long; name it in at most {MAX_TOPIC_CHARS:,}.")
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in topic).split())
    if not cleaned:
        raise QuestionError("The topic is empty: name a story, e.g. “the rail strike”.")
    if len(cleaned) > MAX_TOPIC_CHARS:
        raise QuestionError(f"The topic is {len(cleaned):,} characters long; name it in at most {MAX_TOPIC_CHARS:,}.")
    return cleaned


def check_limit(limit: object) -> int:
    """Raises QuestionError unless 1 <= limit <= MAX_ENTRIES."""
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_ENTRIES:
        shown = repr(limit) if isinstance(limit, int | float) and abs(limit) < 1e12 else type(limit).__name__
        raise QuestionError(f"The limit must be a whole number from 1 to {MAX_ENTRIES} (got {shown}).")
    return limit


def make_timeline(
    library: Library, topic: str, limit: int = TIMELINE_ENTRIES, mode: str | None = None,
    threshold: float = NOT_FOUND_THRESHOLD,
) -> Timeline:
    """The timeline of `topic` ("the rail strike", or "how did the rail strike unfold?"): at most `limit`
    entries whose sentence is at least `threshold` similar to it (see `topic_similarities`).

    Raises:
        QuestionError: the topic is empty or too long, the limit is not 1-MAX_ENTRIES, or the mode unknown.
    """
    started = time.perf_counter()
    topic, limit = clean_topic(topic), check_limit(limit)
    topic, mode = requested_topic(topic) or topic, check_mode(mode or library.settings.mode)
    library.ensure_index()
    store = library.store
    when = read_when(topic, store.newest_date()) if library.settings.read_dates else None
    searched = library.embedder.encode_query(topic)
    depth = max(MIN_PASSAGES, PASSAGES_PER_ENTRY * limit)
    ranked = rank(topic, depth, store, library.embedder, mode, None, searched, when)
    hits = cited_hits(ranked[:depth], store)[:depth]
    sentences = library.sentences.get(
        [PassageText(hit.citation.title, hit.text, hit.citation.article_id) for hit in hits]
    )
    similarities = topic_similarities(library, topic, sentences)
    best = max((float(found.max()) for found in similarities if len(found)), default=0.0)
    shared: dict[str, float] = {}  # a sentence's similarity: the highest among the articles carrying it
    for hit, found, similar in zip(hits, sentences, similarities, strict=True):
        for (start, end), value in zip(found.spans, similar, strict=True):
            words = _words(hit.text[start:end])
            shared[words] = max(shared.get(words, -1.0), float(value))
    picks = [
        pick for hit, found in zip(hits, sentences, strict=True)
        if (pick := best_sentence(hit, found, shared, threshold)) is not None
    ]
    entries = collapse(picks)
    kept = sorted(entries, key=lambda entry: (-entry.match, order_key(entry.citation)))[:limit]
    kept.sort(key=lambda entry: order_key(entry.citation))
    timeline = Timeline(
        topic, threshold, best, tuple(entry for entry in kept if entry.date),
        tuple(entry for entry in kept if not entry.date), len(entries) - len(kept), time.perf_counter() - started,
    )
    logger.info(
        "timeline of %d entries (%d left out) from %d passages in %.2f s", len(kept), timeline.omitted, len(hits),
        timeline.seconds,
    )
    return timeline


def topic_similarities(library: Library, topic: str, sentences: Sequence[PassageSentences]) -> list[Vectors]:
    """Each sentence's similarity to the topic: the cosine the answer's "not found" bar is measured with
    ("title. sentence" against the query, both by the answer encoder), to the topic or to "What happened
    to TOPIC?", whichever is higher (the encoder is tuned on questions; a question stays as it is)."""
    asked = [topic] if topic.endswith("?") else [topic, f"What happened to {topic}?"]
    encoder = library.embedder.answers
    queries = np.concatenate([encoder.encode_query(query) for query in asked])  # (len(asked), d)
    return [
        (found.vectors @ queries.T).max(axis=1) if len(found.spans) else np.zeros(0, np.float32)
        for found in sentences
    ]


def cited_hits(ranked: list[tuple[int, float]], store: IndexStore) -> list[Hit]:
    """One hit per passage and article holding it (identical bodies are one passage cited by several
    articles), in the order of `ranked`."""
    passages = store.passages(row for row, _ in ranked)
    sources = store.citations(passage.body_hash for passage in passages.values())
    hits: list[Hit] = []
    for row, score in ranked:
        passage = passages.get(row)
        for cite in sources.get(passage.body_hash, []) if passage else []:
            located = replace(
                cite, passage=passage.ordinal, paragraph=passage.paragraph, start=passage.start, end=passage.end
            )
            hits.append(Hit(len(hits) + 1, score, passage.text, located))
    return hits


def best_sentence(
    hit: Hit, sentences: PassageSentences, similarity: dict[str, float], threshold: float
) -> _Pick | None:
    """The passage's sentence for the timeline: of those of at least MIN_SENTENCE_WORDS words whose
    similarity (by their words, see `_words`) reaches `threshold`, the most similar, the earliest among
    equals; None when none does."""
    fit = [
        (similarity[_words(hit.text[start:end])], start, end) for start, end in sentences.spans
        if len(hit.text[start:end].split()) >= MIN_SENTENCE_WORDS
    ]
    fit = [candidate for candidate in fit if candidate[0] >= threshold]
    if not fit:
        return None
    match, start, end = min(fit, key=lambda candidate: (-candidate[0], candidate[1]))
    at = sentences.spans.index((start, end))
    return _Pick(hit.text[start:end], _sentence_citation(hit, start, end, sentences), match, sentences.vectors[at])


def order_key(citation: Citation) -> tuple[int, str, str, str, int]:
    """Dated articles first, by date; then title, article id and offset (undated ones by the same)."""
    return (0 if citation.date else 1, citation.date or "", citation.title, citation.article_id, citation.start)


@dataclass(frozen=True)
class _Pick:
    """A passage's sentence for the timeline, cited in its article."""

    text: str
    citation: Citation
    match: float
    vector: Vectors  # (d,) the sentence's vector, embedded after its article's title


def collapse(picks: Sequence[_Pick]) -> list[TimelineEntry]:
    """One entry per sentence: picks of the same words (case, punctuation and white space aside) or with
    sentence vectors closer than SAME_SENTENCE are one entry, cited by the earliest (see `order_key`)."""
    order = sorted(range(len(picks)), key=lambda at: order_key(picks[at].citation))
    groups: list[list[int]] = []
    for at in order:
        pick = picks[at]
        group = next((
            group for group in groups
            if any(_same_sentence(picks[other], pick) for other in group)
        ), None)
        if group is None:
            groups.append([at])
        elif all(_place(picks[other].citation) != _place(pick.citation) for other in group):
            group.append(at)  # an overlapping window of the same article holds the same sentence: once
    return [
        TimelineEntry(
            picks[group[0]].text, picks[group[0]].citation, max(picks[at].match for at in group),
            tuple(picks[at].citation for at in group[1:]),
        )
        for group in groups
    ]


def _same_sentence(first: _Pick, second: _Pick) -> bool:
    """The same words, or nearly the same vector with the same names and numbers (a story's next event is
    often told in nearly the same sentence: "closed on Monday" then "closed again on Friday")."""
    if _words(first.text) == _words(second.text):
        return True
    return float(first.vector @ second.vector) >= SAME_SENTENCE and _facts(first.text) == _facts(second.text)


def _facts(text: str) -> frozenset[str]:
    """The sentence's numbers and capitalized words (names, days, months) after its first word."""
    return frozenset(word for word in _TOKEN.findall(text)[1:] if word[0].isupper() or any(map(str.isdigit, word)))


def _sentence_citation(hit: Hit, start: int, end: int, sentences: PassageSentences) -> Citation:
    """The hit's citation narrowed to the sentence `hit.text[start:end]`: its span in the article and the
    paragraph holding it."""
    cited = hit.citation
    return replace(
        cited, paragraph=_paragraph(hit, start, sentences), start=cited.start + start, end=cited.start + end
    )


def _paragraph(hit: Hit, start: int, sentences: PassageSentences) -> int:
    """The article paragraph holding offset `start` of the passage, read from the passage's line breaks as
    the splitter reads a body's: blank lines when there are any, else every line (unless a sentence of the
    passage spans lines: then its lines are wrapped text of one paragraph)."""
    text, first = hit.text, hit.citation.paragraph
    if "\n" not in text[:start]:
        return first
    if not _BLANK_LINE.search(text) and any("\n" in text[a:b] for a, b in sentences.spans):
        return first
    return first + sum(1 for begin, _ in paragraphs(text) if begin <= start) - 1


def _words(text: str) -> str:
    return _NOT_WORD.sub(" ", text.casefold()).strip()


def _place(citation: Citation) -> tuple[str, int]:
    return citation.article_id, citation.start
