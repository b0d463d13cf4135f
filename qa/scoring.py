"""Score the sentences of candidate passages as answers to a question: features and learned weights.

Each sentence of the top passages gets a row of features: its similarity to the question (embedded
after its article's title), how it compares with the best candidate, the rank and score of its
passage, the question's words in it and around it, and whether it holds the kind of answer asked for
(an amount of money, a share, a count, a time, a name). A logistic model over these rows, trained by
`python -m bench.train_scorer` on news and Wikipedia questions, gives each sentence the probability
that it holds the answer; the weights are a small JSON file shipped with the package.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .lexical import terms

WEIGHTS_FILE = Path(__file__).resolve().parent / "scorer.json"
Matrix = npt.NDArray[np.float32]

FEATURES = (
    "similarity", "similarity_gap", "passage_similarity", "passage_similarity_gap", "reciprocal_rank",
    "retrieval_score", "words_shared", "words_shared_gap", "words_shared_nearby", "words_shared_passage",
    "new_words", "log_length", "has_number", "has_time", "has_name", "untyped_question", "passage_opening",
    "article_lead", "fragment", "money_for_money", "share_for_share", "count_for_count", "date_for_when",
    "no_new_number", "rare_words_shared", "rare_words_nearby", "rare_words_gap", "typed_similarity_gap",
)

_COLUMN = {name: at for at, name in enumerate(FEATURES)}
_TYPED = ("has_number", "has_time", "has_name", "money_for_money", "share_for_share", "count_for_count",
          "date_for_when")
_MONTHS = "January|February|March|April|May|June|July|August|September|October|November|December"
_DAYS = "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday"
_COARSE_TYPES = (
    ("number", re.compile(r"\bhow (many|much|long|far|old|big|often)\b|\bwhat (percentage|share|number)\b")),
    ("time", re.compile(r"^\W*when\b|\bwhat (time|date|day|year|month)\b|\bwhich (day|year|month)\b")),
    ("name", re.compile(r"^\W*(who|whom|whose)\b|\bwho (is|was|are|were)\b")),
    ("which", re.compile(r"^\W*which\b")),
)
_FINE_TYPES = (
    ("share", re.compile(
        r"\b(what|which) (percentage|proportion|share|percent|fraction)\b|\bby how much\b.*\b(rise|fall|grow|drop)"
    )),
    ("money", re.compile(
        r"\bhow much\b|\bwhat (did|does|was|is|will)\b.*\b(cost|pay|price|worth|spend|earn)\b|"
        r"\bhow (big|large) (a |was |is )?(the )?(loss|profit|fine|deal|bill)"
    )),
    ("count", re.compile(r"\bhow (many|long|far|old|fast|often|big|high|tall)\b|\bwhat (number|age)\b|"
                         r"\bby what (multiple|margin)\b")),
    ("time", re.compile(r"^\W*when\b|\bwhat (year|month|day|date)\b|\bwhich (year|month|day)\b|\bin which year\b|"
                        r"\bon which (day|night)\b")),
)
_TIME = re.compile(
    rf"\b({_MONTHS}|{_DAYS}|(1[89]|20)\d\d|New Year|Christmas|Easter|yesterday|today|tonight|tomorrow|"
    r"(last|next|this) (week|month|year|summer|winter|spring|autumn)|morning|evening|\d{1,2}(st|nd|rd|th)?\s+of)\b"
)
_NUMBER = re.compile(
    r"\d|\b(one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty|forty|fifty|hundred|"
    r"thousand|million|billion|dozen|half|twice|tenth|quarter)s?\b",
    re.IGNORECASE,
)
_MONEY = re.compile(
    r"[$£€¥]\s?\d|\d\s?(m|bn|million|billion|trillion)\b|\b(pesos|euros?|dollars?|pounds?|yen|yuan|rupees?)\b",
    re.IGNORECASE,
)
_SHARE = re.compile(r"\d\s?(%|per ?cent|percent)|\bpercentage points?\b", re.IGNORECASE)
_YEAR_OR_DAY = re.compile(rf"\b(19|20)\d\d\b|\b({_MONTHS}|{_DAYS})\b")
_DIGITS = re.compile(r"\d+")
_WORD = re.compile(r"[\w’']+")
_TOKEN = re.compile(r"[\w’'-]+")
MIN_SENTENCE_WORDS = 4  # shorter sentences ("He declined.") are fragments, never quoted alone


def answer_type(question: str) -> str | None:
    """What kind of answer the question asks for: "name", "time", "number", "which", or None."""
    lowered = question.lower()
    return next((kind for kind, pattern in _COARSE_TYPES if pattern.search(lowered)), None)


def fine_type(question: str) -> str | None:
    """The finer kind: "share", "money", "count", "time", or None."""
    lowered = question.lower()
    return next((kind for kind, pattern in _FINE_TYPES if pattern.search(lowered)), None)


def has_type(sentence: str, kind: str, question: str) -> bool:
    """Whether `sentence` holds an answer of `kind` that the question does not already contain."""
    if kind == "time":
        return bool(_TIME.search(sentence))
    if kind == "number":
        return bool(_NUMBER.search(sentence))
    asked = {word.lower() for word in _WORD.findall(question)}
    names = [run for run in names_in(sentence[1:]) if not all(part.lower() in asked for part in run.split())]
    if kind == "name":
        return any(" " in name for name in names)
    return bool(names)


def names_in(text: str) -> list[str]:
    """Runs of capitalized words ("Allied Irish Banks"), except a word that opens a sentence.

    A capitalized word has a capital first letter and a lower-case letter; the words of a run are
    separated by white space only. (Linear in the text: words are found once, then grouped.)
    """
    runs: list[str] = []
    current: list[str] = []
    last_end = 0
    for match in _TOKEN.finditer(text):
        word = match.group()
        capitalized = word[0].isupper() and any(ch.islower() for ch in word)
        gap = text[last_end : match.start()]
        if current and capitalized and gap and not gap.strip():
            current.append(word)
        else:
            if current:
                runs.append(" ".join(current))
            before = text[max(0, match.start() - 2) : match.start()]
            opens_sentence = before[:1] in (".", "!", "?") and before[1:].isspace()
            current = [word] if capitalized and not opens_sentence else []
        last_end = match.end()
    if current:
        runs.append(" ".join(current))
    return runs


@dataclass(frozen=True)
class Candidate:
    """One sentence of a candidate passage: `texts[passage][start:end]`."""

    passage: int  # position of its passage in the candidate list (0 = first)
    index: int  # position of the sentence in its passage
    start: int
    end: int
    words: int

    @property
    def fragment(self) -> bool:
        return self.words < MIN_SENTENCE_WORDS


@dataclass(frozen=True)
class PassageInput:
    """A candidate passage as the scorer sees it."""

    text: str
    score: float  # the retrieval score (any scale; compared with the first passage's)
    opens_article: bool  # the passage starts the article
    spans: Sequence[tuple[int, int]]  # its sentences, offsets in `text`
    vectors: Matrix  # (len(spans), d) sentence vectors, embedded after the title


def features(
    question: str, question_vector: Matrix, passages: Sequence[PassageInput]
) -> tuple[list[Candidate], Matrix]:
    """The candidate sentences of `passages` and their (n, len(FEATURES)) feature rows.

    `question_vector` is the (d,) or (1, d) normalized question embedding.
    """
    query = np.asarray(question_vector, dtype=np.float32).reshape(-1)
    asked = set(terms([question])[0])
    coarse, fine = answer_type(question), fine_type(question)
    asked_numbers = set(_DIGITS.findall(question))
    top_score = max((p.score for p in passages), default=0.0) or 1.0
    flat = [set(found) for found in terms([p.text[a:b] for p in passages for a, b in p.spans])]
    sentence_terms_of, at = [], 0
    for passage in passages:
        sentence_terms_of.append(flat[at : at + len(passage.spans)])
        at += len(passage.spans)
    rarity = _rarity(asked, [set().union(*found) for found in sentence_terms_of])
    candidates: list[Candidate] = []
    rows: list[list[float]] = []
    similarities: list[float] = []
    passage_similarity: list[float] = []
    for number, (passage, sentence_terms) in enumerate(zip(passages, sentence_terms_of, strict=True)):
        if not passage.spans:
            continue
        texts = [passage.text[a:b] for a, b in passage.spans]
        passage_terms = set().union(*sentence_terms)
        cosines = passage.vectors @ query
        best_here = float(cosines.max())
        for index, ((start, end), text) in enumerate(zip(passage.spans, texts, strict=True)):
            own = sentence_terms[index]
            nearby = own | (sentence_terms[index - 1] if index else set())
            nearby |= sentence_terms[index + 1] if index + 1 < len(texts) else set()
            words = len(text.split())
            new_number = any(digits not in asked_numbers for digits in _DIGITS.findall(text))
            candidates.append(Candidate(number, index, start, end, words))
            similarities.append(float(cosines[index]))
            passage_similarity.append(best_here)
            rows.append([
                float(cosines[index]), 0.0, best_here, 0.0, 1.0 / (number + 1), passage.score / top_score,
                _share(asked, own), 0.0, _share(asked, nearby), _share(asked, passage_terms),
                len(own - asked) / max(len(own), 1), math.log(words + 1),
                float(coarse == "number" and has_type(text, "number", question)),
                float(coarse == "time" and has_type(text, "time", question)),
                float(coarse in ("name", "which") and has_type(text, coarse, question)),
                float(coarse is None), float(index == 0), float(index == 0 and passage.opens_article),
                float(words < MIN_SENTENCE_WORDS),
                float(fine == "money" and bool(_MONEY.search(text))),
                float(fine == "share" and bool(_SHARE.search(text))),
                float(fine == "count" and new_number and bool(_NUMBER.search(text))),
                float(fine == "time" and bool(_YEAR_OR_DAY.search(text))),
                float(fine in ("money", "share", "count") and not new_number),
                _weighted(rarity, own), _weighted(rarity, nearby), 0.0, 0.0,
            ])
    matrix = np.asarray(rows, dtype=np.float32).reshape(-1, len(FEATURES))
    if len(matrix):
        for gap, of in (("similarity_gap", "similarity"), ("passage_similarity_gap", "passage_similarity"),
                        ("words_shared_gap", "words_shared"), ("rare_words_gap", "rare_words_shared")):
            matrix[:, _COLUMN[gap]] = matrix[:, _COLUMN[of]] - matrix[:, _COLUMN[of]].max()
        typed = matrix[:, [_COLUMN[name] for name in _TYPED]].sum(axis=1)
        matrix[:, _COLUMN["typed_similarity_gap"]] = matrix[:, _COLUMN["similarity_gap"]] * typed
    return candidates, matrix


def _share(asked: set[str], found: set[str]) -> float:
    return len(asked & found) / len(asked) if asked else 0.0


def _rarity(asked: set[str], passage_terms: list[set[str]]) -> dict[str, float]:
    """Each question term weighted by how few candidate passages hold it (an IDF over the candidates),
    normalized to sum to 1: a word in every candidate says little about which sentence answers."""
    count = len(passage_terms)
    weights = {term: math.log(1 + count / (1 + sum(term in found for found in passage_terms))) for term in asked}
    total = sum(weights.values()) or 1.0
    return {term: weight / total for term, weight in weights.items()}


def _weighted(rarity: dict[str, float], found: set[str]) -> float:
    return sum(weight for term, weight in rarity.items() if term in found)


@dataclass(frozen=True)
class Scorer:
    """A logistic model over `FEATURES`: standardized features times weights, plus a bias."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float

    def logits(self, matrix: Matrix) -> npt.NDArray[np.float64]:
        """(n,) log-odds that each sentence holds the answer."""
        if not len(matrix):
            return np.zeros(0)
        standard = (matrix.astype(np.float64) - np.asarray(self.mean)) / np.asarray(self.scale)
        return standard @ np.asarray(self.weights) + self.bias

    def to_json(self) -> dict[str, object]:
        return {"features": list(FEATURES), "mean": list(self.mean), "scale": list(self.scale),
                "weights": list(self.weights), "bias": self.bias}

    @classmethod
    def from_json(cls, record: dict[str, object]) -> Scorer:
        if list(record["features"]) != list(FEATURES):  # type: ignore[call-overload]
            raise ValueError("the scorer weights were trained on other features; run `python -m bench.train_scorer`")
        return cls(*(tuple(record[key]) for key in ("mean", "scale", "weights")), float(record["bias"]))  # type: ignore[arg-type]


@cache
def default_scorer() -> Scorer:
    """The shipped weights (`qa/scorer.json`)."""
    return Scorer.from_json(json.loads(WEIGHTS_FILE.read_text(encoding="utf-8")))
