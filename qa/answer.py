"""Compose an `Answer` from retrieved hits: quoted sentences with `[n]` markers and numbered sources.

The answer is extractive: the one to three sentences of the top passages that are most similar
to the question, quoted verbatim from the passage's character spans (so every quote is an exact
substring of its article). Sentences are scored with the library's own embedding model, and
the same scores decide the honest "not found": when even the best sentence is less similar to
the question than `NOT_FOUND_THRESHOLD`, the reply says so and shows the nearest passages as
weak matches. Scoring sentences ourselves keeps that decision independent of how `retrieve`
ranks or scales its scores (dense, keyword or fused).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from .passages import Splitter
from .schema import Hit

if TYPE_CHECKING:
    from .assistant import Library

logger = logging.getLogger(__name__)

# Cosine similarity (all-MiniLM-L6-v2) between the question and the best sentence of the hits.
# Calibrated by `python -m bench.calibrate_not_found` on 52 answerable and 40 off-topic questions over
# the fixture articles plus 240 BBC News articles: see docs/chat.md, "How sure is "not found"?".
NOT_FOUND_THRESHOLD = 0.47
MAX_SENTENCES = 3
SENTENCE_MARGIN = 0.1  # a second or third sentence must score within this of the best one
MIN_SENTENCE_WORDS = 4  # shorter sentences ("He declined.") are shown in passages, never quoted alone
CONTEXT_QUESTIONS = 2  # earlier questions joined to a follow-up, at most
_FOLLOW_UP_WORDS = frozenset("he she it they him her his hers its their theirs them this these those".split())
_FOLLOW_UP_OPENERS = re.compile(r"^\W*(and|also|but|so|then|what about|how about)\b", re.IGNORECASE)
_SHORT_QUESTION_WORDS = 2
_WORD = re.compile(r"[\w’']+")
LEXICAL_WEIGHT = 0.15  # how much the question's own words count in choosing sentences (not in "not found")
_STOP_WORDS = frozenset(
    "a an the of in on at to for from by with about as and or but not no is are was were be been being do does did "
    "has have had will would can could should may might must shall what who whom whose when where which why how "
    "it its he him his she her hers they them their theirs this that these those there here i you we me my your our "
    "any some all than then so if into over after before up out".split()
)
TYPE_WINDOW = 0.3  # a sentence of the asked-for kind may lead the answer if this close to the best one
_ANSWER_TYPES = (
    ("number", re.compile(r"\bhow (many|much|long|far|old|big|often)\b|\bwhat (percentage|share|number)\b")),
    ("time", re.compile(r"^\W*when\b|\bwhat (time|date|day|year|month)\b|\bwhich (day|year|month)\b")),
    ("name", re.compile(r"^\W*(who|whom|whose)\b|\bwho (is|was|are|were)\b")),
    ("which", re.compile(r"^\W*which\b")),
)
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_TIME = re.compile(
    rf"\b({_MONTHS}|{_DAYS}|(1[89]|20)\d\d|New Year|Christmas|Easter|yesterday|today|tonight|tomorrow|"
    r"(last|next|this) (week|month|year|summer|winter|spring|autumn)|morning|evening|\d{1,2}(st|nd|rd|th)?\s+of)\b"
)
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|"
    r"thousand|million|billion|dozen|half|twice|tenth|quarter)s?\b",
    re.IGNORECASE,
)
_NAME = re.compile(r"(?<![.!?]\s)\b[A-Z][\w’'-]*[a-z][\w’'-]*(?:\s+[A-Z][\w’'-]*[a-z][\w’'-]*)*")
Vectors = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Quote:
    """One sentence of a passage, verbatim: `hit.text[start:end] == text`.

    `start`/`end` are offsets in the passage; add `hit.citation.start` for offsets in the article.
    """

    number: int  # the source it comes from, as in the `[n]` marker
    text: str
    start: int
    end: int
    score: float  # cosine similarity to the question (for a follow-up: see `Composer._score`)
    match: float  # cosine similarity to the searched query: what the not-found threshold is applied to
    overlap: float = 0.0  # share of the question's own content words in the sentence

    @property
    def rank(self) -> float:
        """What orders sentences: similarity, plus a little for sharing the question's words."""
        return self.score + LEXICAL_WEIGHT * self.overlap


@dataclass(frozen=True)
class Source:
    """A numbered source: the hit, and the sentences of it to highlight.

    `highlights` are the sentences the short answer quotes from it, or else its one sentence
    most similar to the question.
    """

    number: int
    hit: Hit
    highlights: tuple[Quote, ...]
    relevance: float  # the best `match` among its sentences
    weak: bool  # not quoted in the answer, and its relevance is below the not-found threshold

    @property
    def support(self) -> Quote | None:
        """The sentence the title link scrolls to."""
        return self.highlights[0] if self.highlights else None


@dataclass(frozen=True)
class Answer:
    """What the chat shows for one question."""

    question: str  # as asked
    query: str  # what was searched: the question, joined to earlier ones for a follow-up
    found: bool
    best: float  # similarity of the best sentence, compared with `threshold`
    threshold: float
    quotes: tuple[Quote, ...]  # the short answer, best first; empty when not found
    sources: tuple[Source, ...]
    seconds: float = 0.0

    @property
    def follow_up(self) -> bool:
        return self.query != self.question


def is_follow_up(question: str) -> bool:
    """True for a question that needs the conversation: short, or leaning on a pronoun ("he", "it")."""
    words = [word.lower() for word in _WORD.findall(question)]
    return (
        len(words) <= _SHORT_QUESTION_WORDS
        or any(word in _FOLLOW_UP_WORDS for word in words)
        or bool(_FOLLOW_UP_OPENERS.match(question))
    )


def contextual_query(question: str, previous: Sequence[str] = ()) -> str:
    """The question to search with: a follow-up is joined to the questions it follows.

    Walks back through `previous` (oldest first) over earlier follow-ups to the question that
    started the topic, keeping at most `CONTEXT_QUESTIONS` of them.
    """
    question = " ".join(question.split())
    if not previous or not is_follow_up(question):
        return question
    context: list[str] = []
    for earlier in reversed(previous):
        earlier = " ".join(earlier.split())
        if not earlier:
            continue
        context.insert(0, earlier)
        if len(context) >= CONTEXT_QUESTIONS or not is_follow_up(earlier):
            break
    return " ".join([*context, question])


class Composer:
    """Answers questions from one `Library`; sentence vectors are cached between questions.

    Args:
        library: the articles and their index.
        threshold: best-sentence similarity below which the articles "don't seem to cover" it.
        max_sentences: sentences in the short answer. Defaults to 3.
        cache_size: sentence vectors kept. Defaults to 5,000 (about 8 MB).
    """

    def __init__(
        self,
        library: Library,
        threshold: float = NOT_FOUND_THRESHOLD,
        max_sentences: int = MAX_SENTENCES,
        cache_size: int = 5000,
    ) -> None:
        self.library = library
        self.threshold = threshold
        self.max_sentences = max_sentences
        self.cache_size = cache_size
        self._splitter = Splitter()
        self._split_lock = threading.Lock()
        self._cache: OrderedDict[str, Vectors] = OrderedDict()
        self._cache_lock = threading.Lock()

    def answer(self, question: str, k: int = 5, previous: Sequence[str] = (), mode: str | None = None) -> Answer:
        """Retrieve `k` passages for the question (in the context of `previous` questions) and compose.

        `mode`: dense, bm25 or hybrid; the library's default when None.

        Raises:
            QuestionError: the question is empty or too long, or k is out of range.
        """
        started = time.perf_counter()
        query = contextual_query(question, previous)
        hits = self.library.retrieve(query, k, mode)
        answer = replace(self.compose(question, query, hits), seconds=time.perf_counter() - started)
        logger.info(
            "answered from %d passages (best %.3f, found=%s) in %.2f s", len(hits), answer.best, answer.found,
            answer.seconds,
        )
        return answer

    def compose(self, question: str, query: str, hits: Sequence[Hit]) -> Answer:
        """The answer for `hits`, which were retrieved for `query` (the question with its context)."""
        quotes = self._score(question, query, hits)
        ranked = sorted((quote for own in quotes for quote in own if _quotable(quote)), key=_rank, reverse=True)
        best = max((quote.match for quote in ranked), default=0.0)
        found = best >= self.threshold
        chosen = self._choose(question, ranked, quotes) if found else []
        sources = []
        for number, (hit, own) in enumerate(zip(hits, quotes, strict=True), start=1):
            cited = sorted((quote for quote in chosen if quote.number == number), key=lambda quote: quote.start)
            highlights = tuple(cited) if cited else tuple(max(own, key=_rank, default=None) for _ in own[:1])
            relevance = max((quote.match for quote in own), default=0.0)
            sources.append(Source(number, hit, highlights, relevance, weak=not cited and relevance < self.threshold))
        return Answer(question, query, found, best, self.threshold, tuple(chosen), tuple(sources))

    def _score(self, question: str, query: str, hits: Sequence[Hit]) -> list[list[Quote]]:
        """Every sentence of every hit with its similarity to the question, per hit, in passage order.

        A sentence's `match` is its similarity to the searched query; its `score` is the same for
        a question on its own, and for a follow-up the similarity to the mean of the bare question
        and the query: the context finds the story, the question itself picks the sentence. Its
        `overlap` (the question's own words in it: "air" in "aired") breaks near ties.
        """
        spans = [self._sentences(hit.text) for hit in hits]
        texts = [hit.text[a:b] for hit, found in zip(hits, spans, strict=True) for a, b in found]
        if not texts:
            return [[] for _ in hits]
        vectors = self._vectors(texts)
        if query == question:
            scores = matches = vectors @ self.library.embedder.encode_query(query)[0]
        else:
            asked, searched = self.library.embedder.encode([question, query])
            blend = asked + searched
            scores, matches = vectors @ (blend / np.linalg.norm(blend)), vectors @ searched
        overlaps = [word_overlap(question, text) for text in texts]
        quotes: list[list[Quote]] = []
        at = 0
        for number, (hit, found) in enumerate(zip(hits, spans, strict=True), start=1):
            quotes.append([
                Quote(number, hit.text[a:b], a, b, float(scores[at + i]), float(matches[at + i]), overlaps[at + i])
                for i, (a, b) in enumerate(found)
            ])
            at += len(found)
        return quotes

    def _choose(self, question: str, ranked: list[Quote], quotes: list[list[Quote]]) -> list[Quote]:
        """The short answer: the best sentences within SENTENCE_MARGIN of the best one.

        When the question asks for a kind of answer (a name, a time, a number) and the best
        sentence has none, the best sentence that has one (within TYPE_WINDOW) goes first. For
        "who"/"which" questions the sentence after the lead is added when there is room: news
        stories often describe someone in one sentence and name them in the next.
        """
        best, top = ranked[0], max(quote.score for quote in ranked)
        wanted = answer_type(question)
        lead = best
        if wanted and not has_type(best.text, wanted, question):
            typed = (q for q in ranked if q.score >= top - TYPE_WINDOW and has_type(q.text, wanted, question))
            lead = next(typed, best)
        chosen = [lead]
        for quote in ranked:
            if len(chosen) >= self.max_sentences:
                break
            if quote.score >= top - SENTENCE_MARGIN and quote.text not in {q.text for q in chosen}:
                chosen.append(quote)
        if wanted in ("name", "which") and len(chosen) < self.max_sentences:
            following = [q for q in quotes[lead.number - 1] if q.start >= lead.end][:1]
            if following and _quotable(following[0]) and following[0].text not in {q.text for q in chosen}:
                chosen.insert(chosen.index(lead) + 1, following[0])
        return chosen

    def _sentences(self, text: str) -> list[tuple[int, int]]:
        with self._split_lock:
            return [(span.start, span.end) for span in self._splitter.sentences(text)]

    def _vectors(self, texts: list[str]) -> Vectors:
        """(n, d) float32 sentence vectors, embedding only those not cached yet (in one batch)."""
        with self._cache_lock:
            missing = list(dict.fromkeys(text for text in texts if text not in self._cache))
        if missing:
            fresh = self.library.embedder.encode(missing)
            with self._cache_lock:
                self._cache.update(zip(missing, fresh, strict=True))
                while len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        with self._cache_lock:
            found = [self._cache.get(text) for text in texts]
        if any(vector is None for vector in found):  # evicted meanwhile by a concurrent question
            return self.library.embedder.encode(texts)
        return np.vstack(found).astype(np.float32, copy=False)  # type: ignore[arg-type]


def content_words(text: str) -> set[str]:
    """Lower-cased words without stop words, crudely stemmed ("aired" -> "air", "offers" -> "offer")."""
    found = set()
    for word in _WORD.findall(text.lower()):
        word = re.sub(r"[’']s$", "", word)
        if word in _STOP_WORDS or len(word) < 2:
            continue
        for suffix in ("ing", "ed", "es", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
        found.add(word)
    return found


def word_overlap(question: str, sentence: str) -> float:
    """The share of the question's content words that the sentence contains (0 to 1)."""
    wanted = content_words(question)
    return len(wanted & content_words(sentence)) / len(wanted) if wanted else 0.0


def answer_type(question: str) -> str | None:
    """What kind of answer the question asks for: "name", "time", "number", "which", or None."""
    lowered = question.lower()
    for kind, pattern in _ANSWER_TYPES:
        if pattern.search(lowered):
            return kind
    return None


def has_type(sentence: str, kind: str, question: str) -> bool:
    """Whether `sentence` holds an answer of `kind` that the question does not already contain."""
    if kind == "time":
        return bool(_TIME.search(sentence))
    if kind == "number":
        return bool(_NUMBER.search(sentence))
    asked = {word.lower() for word in _WORD.findall(question)}
    names = [
        run for run in _NAME.findall(sentence[1:]) if not all(part.lower() in asked for part in run.split())
    ]
    if kind == "name":
        return any(" " in name for name in names)
    return bool(names)


def _quotable(quote: Quote) -> bool:
    return len(quote.text.split()) >= MIN_SENTENCE_WORDS


def _rank(quote: Quote) -> tuple[bool, float]:
    """Order sentences by `Quote.rank`; fragments too short to quote come last."""
    return _quotable(quote), quote.rank
