"""Compose an `Answer` from retrieved passages: quoted sentences with `[n]` markers and numbered sources.

The answer is extractive: the one to three sentences that most likely hold the answer, quoted verbatim
from the passages' character spans (so every quote is an exact substring of its article). The
sentences of the top `CANDIDATES` passages are scored by `qa.scoring` (similarity to the question
read after the article's title, by the answer encoder `Embedder.answers`; the question's words, the
kind of answer asked for, the passage's rank), and the passages are shown in the order of their best
sentence. The reply says honestly that
the articles "don't seem to cover" a question when no sentence is close to it (`NOT_FOUND_THRESHOLD`),
when every name the question gives is unknown to the collection, or when it asks about a year that
no retrieved passage mentions (for a year the collection rarely mentions, that none of the sources does).
"""

from __future__ import annotations

import difflib
import logging
import math
import re
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .embed import Vectors
from .lexical import terms
from .schema import Answer, Filters, Hit, Quote, Source
from .scoring import Candidate, Matrix, PassageInput, Scorer, default_scorer, features
from .search import check_k, clean_question
from .sentences import PassageText

if TYPE_CHECKING:
    from .assistant import Library

logger = logging.getLogger(__name__)

# Cosine similarity ("title. sentence" against the question) that the closest sentence must reach: below
# it nothing retrieved is about the question and the articles "don't seem to cover" it. Calibrated by
# `python -m bench.calibrate_not_found` on the tuning questions over the BBC collection's passages
# (docs/evaluation.md). A smaller collection offers an unrelated question fewer chances of a close
# sentence by accident, so its bar is lower (`size_bar`).
NOT_FOUND_THRESHOLD = 0.35
CALIBRATED_PASSAGES = 8_876  # the collection the bar was calibrated on
NULL_SPREAD = 0.035  # how fast the bar falls with the collection's size (`size_bar`)
NOT_FOUND = "The articles don't seem to cover this."
WEAK_SHARE = 0.02  # a source whose best sentence has less of the answer's probability is a weak match
MAX_SENTENCES = 3
CANDIDATES = 10  # passages whose sentences compete for the answer (the sources are the best k of them)
ARTICLES_EXPANDED = 2  # the other passages of the top articles join the candidates
MORE_FROM_ARTICLES = 10  # at most this many
QUOTE_MARGIN = 3.0  # a second or third sentence's score must be within a factor e**3 of the best one's
CONTEXT_QUESTIONS = 2  # earlier questions joined to a follow-up, at most
FOLLOW_UP_WORDS = frozenset("he she it they him her his hers its their theirs them this these those".split())
_FOLLOW_UP_OPENERS = re.compile(r"^\W*(and|also|but|so|then|what about|how about)\b", re.IGNORECASE)
_SHORT_QUESTION_WORDS = 2
_WORD = re.compile(r"[\w’']+")
_YEAR = re.compile(r"\b(?:1[89]|20)\d\d\b")
_CAPITALIZED = r"[A-Z][\w’'-]*[a-z][\w’'-]*"
_MODEL = r"(?:[A-Z]+\d+[A-Za-z]*|\d{1,3}[A-Za-z]?)"  # a model number after a name: "S10", "3", "4G"
_NAMED = re.compile(
    rf"(?<=\s){_CAPITALIZED}(?:[ ]+(?:{_CAPITALIZED}|{_MODEL}\b))*|\b(?:1[89]|20)\d\d\b"
)
PHRASE_DEPTH = 20  # passages sharing a name's words that are searched for the name as a phrase
NEAR_SPELLING = 0.85  # a word this similar to a passage's (difflib's ratio) is taken for a misspelling of it
# A name whose every word is in this many passages is common: it does not vouch for an unknown name; a year
# in fewer passages must be in a source, not only in some retrieved passage.
COMMON_NAME = 300


def is_follow_up(question: str) -> bool:
    """True for a question that needs the conversation: short, or leaning on a pronoun ("he", "it")."""
    words = [word.lower() for word in _WORD.findall(question)]
    return (
        len(words) <= _SHORT_QUESTION_WORDS
        or any(word in FOLLOW_UP_WORDS for word in words)
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
    """Answers questions from one `Library`.

    Args:
        library: the articles, their index and their sentence vectors.
        threshold: similarity of the closest sentence below which the articles "don't seem to cover" it;
            by default `size_bar` of the library's passage count.
        max_sentences: sentences in the short answer. Defaults to 3.
        scorer: the sentence model; the shipped weights by default.
        candidates: passages whose sentences are scored. Defaults to `CANDIDATES`.
        common_name: passages that even the rarest word of a known name must be in for the name not to
            vouch for an unknown one, and a year for any retrieved passage (not only a source) to vouch
            for it. Defaults to `COMMON_NAME`.
    """

    def __init__(
        self,
        library: Library,
        threshold: float | None = None,
        max_sentences: int = MAX_SENTENCES,
        scorer: Scorer | None = None,
        candidates: int = CANDIDATES,
        common_name: int = COMMON_NAME,
    ) -> None:
        self.library = library
        self.threshold = threshold
        self.max_sentences = max_sentences
        self._scorer = scorer
        self.candidates = candidates
        self.common_name = common_name

    @property
    def scorer(self) -> Scorer:
        """The sentence model, loaded on first use."""
        if self._scorer is None:
            self._scorer = default_scorer()
        return self._scorer

    def answer(
        self, question: str, k: int = 5, previous: Sequence[str] = (), mode: str | None = None,
        filters: Filters | None = None,
    ) -> Answer:
        """Retrieve passages for the question (in the context of `previous` questions) and compose `k` sources.

        `mode`: dense, bm25 or hybrid; the library's default when None.

        Raises:
            QuestionError: the question is empty or too long, or k is out of range.
        """
        started = time.perf_counter()
        question, k = clean_question(question), check_k(k)
        query = clean_question(contextual_query(question, previous))  # three questions may be too long
        searched = self.library.embedder.encode_query(query)  # once, for both searches and the sentences
        hits = self.candidate_hits(query, k, mode, filters, searched)
        answer = replace(self.compose(question, query, hits, k, searched), seconds=time.perf_counter() - started)
        logger.info(
            "answered from %d passages (best %.3f, found=%s) in %.2f s", len(hits), answer.best, answer.found,
            answer.seconds,
        )
        return answer

    def candidate_hits(
        self, query: str, k: int = 5, mode: str | None = None, filters: Filters | None = None,
        searched: Vectors | None = None,
    ) -> list[Hit]:
        """The passages whose sentences compete: the best `max(k, candidates)`, then the other best
        passages of the top `ARTICLES_EXPANDED` articles (the right article often holds the answer in
        another passage than its best-ranked one). Those come last, scored as the weakest retrieved.
        `searched` is the query's (1, d) embedding when the caller has it."""
        hits = self.library.retrieve(query, max(k, self.candidates), mode, filters, searched)
        top = tuple(dict.fromkeys(hit.citation.article_id for hit in hits))[:ARTICLES_EXPANDED]
        if not top:
            return hits
        seen = {_place(hit) for hit in hits}
        weakest = min(hit.score for hit in hits)
        within = replace(filters or Filters(), articles=top)
        found = self.library.retrieve(query, len(hits) + MORE_FROM_ARTICLES, mode, within, searched)
        more = [replace(hit, score=weakest) for hit in found if _place(hit) not in seen]
        return [*hits, *more[:MORE_FROM_ARTICLES]]

    def features(
        self, question: str, query: str, hits: Sequence[Hit], searched: Vectors | None = None
    ) -> tuple[list[Candidate], Matrix]:
        """The sentences of the hits and their feature rows (see `qa.scoring.features`).

        The similarity is to the question; for a follow-up, to the mean of the bare question and the
        searched query: the context finds the story, the question itself picks the sentence.
        `searched` is the query's (1, d) embedding when the caller has it.
        """
        sentences = self.library.sentences.get(
            [PassageText(hit.citation.title, hit.text, hit.citation.article_id) for hit in hits]
        )
        embedder = self.library.embedder.answers  # the searches' embedder, or its copy tuned for answers
        reranker = self.library.reranker
        encode = reranker.question_vector if reranker is not None else embedder.encode_query  # remembers
        tuned = embedder is not self.library.embedder
        query_vector = (encode(query) if searched is None or tuned else searched)[0]
        if query == question:
            vector = query_vector
        else:
            blend = encode(question)[0] + query_vector
            vector = blend / np.linalg.norm(blend)
        inputs = [
            PassageInput(hit.text, hit.score, hit.citation.start == 0, found.spans, found.vectors)
            for hit, found in zip(hits, sentences, strict=True)
        ]
        return features(question, vector, inputs)

    def score(
        self, question: str, query: str, hits: Sequence[Hit], searched: Vectors | None = None
    ) -> list[list[Quote]]:
        """Every sentence of every hit as a `Quote`, per hit in passage order.

        A sentence's `score` is its softmax share of the scores of all candidates: the model's
        probability that it is the sentence holding the answer, if one of them does.
        """
        candidates, matrix = self.features(question, query, hits, searched)
        logits = self.scorer.logits(matrix)
        shares = np.exp(logits - logits.max()) if len(logits) else logits
        shares = shares / shares.sum() if len(shares) else shares
        quotes: list[list[Quote]] = [[] for _ in hits]
        for candidate, row, share in zip(candidates, matrix, shares, strict=True):
            hit = hits[candidate.passage]
            quotes[candidate.passage].append(Quote(
                candidate.passage + 1, hit.text[candidate.start : candidate.end], candidate.start, candidate.end,
                float(share), float(row[0]),
            ))
        return quotes

    def compose(
        self, question: str, query: str, hits: Sequence[Hit], k: int = 5, searched: Vectors | None = None
    ) -> Answer:
        """The answer with `k` sources, from `hits` retrieved for `query` (the question with its context)."""
        scored = self.score(question, query, hits, searched)
        best_of = [max((q.score for q in own if _quotable(q)), default=0.0) for own in scored]
        order = sorted(range(len(hits)), key=lambda at: (-best_of[at], at))[:k]
        sources_hits = [hits[at] for at in order]
        own_quotes = [[replace(q, number=number) for q in scored[at]] for number, at in enumerate(order, start=1)]
        ranked = sorted(
            (q for own in own_quotes for q in own if _quotable(q)), key=lambda q: (-q.score, q.number, q.start)
        )
        missing = self._unknown(question, hits) + self._missing_years(question, hits, sources_hits)
        unknown = tuple(dict.fromkeys(missing))
        closest = max((q.match for own in own_quotes for q in own), default=0.0)
        bar = self.threshold if self.threshold is not None else size_bar(self.library.passage_total())
        found = bool(ranked) and closest >= bar and not unknown
        chosen = self._choose(ranked) if found else []
        sources = []
        for number, (hit, own) in enumerate(zip(sources_hits, own_quotes, strict=True), start=1):
            cited = sorted((q for q in chosen if q.number == number), key=lambda q: q.start)
            fallback = sorted(own, key=lambda q: (not _quotable(q), -q.score, q.start))[:1]
            highlights = tuple(cited) if cited else tuple(fallback)
            relevance = max((q.score for q in own if _quotable(q)), default=0.0)
            weak = not cited and (not found or relevance < WEAK_SHARE)
            sources.append(Source(number, hit, highlights, relevance, weak))
        return Answer(question, query, found, closest, bar, tuple(chosen), tuple(sources), unknown=unknown)

    def _choose(self, ranked: list[Quote]) -> list[Quote]:
        """The short answer: the best sentence, then up to two more within QUOTE_MARGIN in log score of it."""
        chosen = [ranked[0]]
        bar = _log(ranked[0].score) - QUOTE_MARGIN
        for quote in ranked[1:]:
            if len(chosen) >= self.max_sentences or _log(quote.score) < bar:
                break
            if quote.text not in {q.text for q in chosen}:
                chosen.append(quote)
        return chosen

    def _unknown(self, question: str, hits: Sequence[Hit] = ()) -> tuple[str, ...]:
        """The question's names and years when none of them is in any passage of the collection.

        A name with a model number ("Galaxy S10") must occur as that phrase, not only word by word.
        A question that also names something the articles know ("When was Tesla returned to Gospic?")
        is more likely misspelt or spelt another way ("Gospić") than about something else, unless
        that name is a common one (`_common`).
        """
        named = named_words(question)
        missing = tuple(name for name in named if not self._known(name, hits))
        telling = [name for name in named if name in missing or not self._common(name)]
        return missing if len(missing) == len(telling) else ()

    def _missing_years(self, question: str, hits: Sequence[Hit], sources: Sequence[Hit]) -> tuple[str, ...]:
        """The years the question names that none of the passages found mentions; for a year few passages
        of the collection mention (likely outside its time: "in 1981", "in 2013"), that none of the
        `sources` mentions."""
        return tuple(
            year for year in dict.fromkeys(_YEAR.findall(question))
            if not any(year in hit.text for hit in (hits if self._common(year) else sources))
        )

    def _common(self, name: str) -> bool:
        """Whether even the name's rarest word is in `common_name` passages or more ("Britain", "Europe"):
        such a name says little about what the question is after, so it does not vouch for one the
        collection does not know ("How much does a Tesla Model 3 cost in Britain?")."""
        store, common = self.library.store, self.common_name
        counts = [len(store.search_terms(word, common)) for word in name.split() if terms([word])[0]]
        return bool(counts) and min(counts) >= common

    def _known(self, name: str, hits: Sequence[Hit] = ()) -> bool:
        """Whether some passage of the collection holds the name. A product with a model number
        ("Galaxy S10", "PlayStation 4") must occur as that phrase; a name of one word anywhere, or spelt
        nearly the same in one of the question's `hits` ("Bismark", "Scandinavian"); the capitalized
        words of a longer name together in one passage (of those sharing most of its words and the
        question's `hits`), in any order and form ("Prime Minister Blair", "the Oriental Courts"), each
        as it is or spelt nearly the same."""
        store = self.library.store
        words = name.split()
        if not any(char.isdigit() for char in name):
            wanted = set(terms([" ".join(part for part in re.split(r"[\s-]+", name) if part[:1].isupper())])[0])
            if len(wanted) < 2:  # one word: anywhere, or spelt nearly the same in a retrieved passage
                return any(store.search_terms(word, 1) for word in words if terms([word])[0]) or bool(wanted) and any(
                    _holds_all(wanted, set(found)) for found in terms([hit.text for hit in hits])
                )
            rows = [row for row, _ in store.search_terms(name, PHRASE_DEPTH)]
            texts = [passage.text for passage in store.passages(rows).values()] + [hit.text for hit in hits]
            return any(_holds_all(wanted, set(found)) for found in terms(texts))
        phrase = re.compile(r"\b" + r"[\s-]+".join(map(re.escape, words)) + r"\b", re.IGNORECASE)
        rows = [row for row, _ in store.search_terms(name, PHRASE_DEPTH)]
        return any(phrase.search(passage.text) for passage in store.passages(rows).values())


def size_bar(passages: int) -> float:
    """The similarity the closest sentence must reach in a collection of `passages` passages.

    The closest of many unrelated sentences is the more similar by chance the more there are: for
    n draws it grows about as sqrt(2 ln n) standard deviations. The bar is `NOT_FOUND_THRESHOLD` for
    the collection it was calibrated on and larger ones, and falls along that curve for smaller ones
    (0.27 for a single article of nine passages).
    """
    if passages >= CALIBRATED_PASSAGES:
        return NOT_FOUND_THRESHOLD
    reach = math.sqrt(2 * math.log(CALIBRATED_PASSAGES)) - math.sqrt(2 * math.log(max(passages, 1)))
    return NOT_FOUND_THRESHOLD - NULL_SPREAD * reach


def _holds_all(wanted: set[str], found: set[str]) -> bool:
    """Whether every wanted term is among the found ones, or one spelt nearly the same ("Counil",
    "Noveau", "Beausejour" for "Council", "Nouveau", "Beauséjour")."""
    return all(term in found or difflib.get_close_matches(term, found, 1, NEAR_SPELLING) for term in wanted)


def named_words(question: str) -> list[str]:
    """The question's names (runs of capitalized words, not its first word, with the model numbers that
    follow them: "Galaxy S10", without a possessive 's) and years, once each."""
    found: list[str] = []
    for match in _NAMED.finditer(question):
        run: list[str] = []
        for word in match.group().split():  # a possessive ends a name: "Iqbal's Allahabad address"
            bare = re.sub(r"[’']s?$", "", word)
            run.append(bare)
            if bare != word:
                found.append(" ".join(run))
                run = []
        found.extend([" ".join(run)] if run else [])
    return [name for name in dict.fromkeys(found) if any(terms([word])[0] for word in name.split())]


def _place(hit: Hit) -> tuple[str, int]:
    return hit.citation.article_id, hit.citation.start


def _log(share: float) -> float:
    return float(np.log(max(share, 1e-12)))


def _quotable(quote: Quote) -> bool:
    return len(quote.text.split()) >= 4
