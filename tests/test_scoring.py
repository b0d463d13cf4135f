"""Scoring sentences as answers: the kind of answer asked for, the feature rows, the shipped weights."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qa.embed import Embedder
from qa.scoring import FEATURES, PassageInput, Scorer, default_scorer, features, fine_type
from qa.sentences import with_title


@pytest.mark.parametrize(
    ("question", "kind"),
    [
        ("How much did the carmaker earn last quarter?", "money"),
        ("What share of voters backed the plan?", "share"),
        ("How many jobs will the bank cut?", "count"),
        ("When did the strike begin?", "time"),
        ("In which year was the club founded?", "time"),
        ("Who runs the central bank?", None),
    ],
)
def test_the_question_says_which_kind_of_figure_it_wants(question: str, kind: str | None) -> None:
    assert fine_type(question) == kind


def passage(text: str, embedder: Embedder, title: str = "Carmaker results", score: float = 1.0) -> PassageInput:
    spans = [(0, text.index(".") + 1), (text.index(".") + 2, len(text))]
    vectors = embedder.encode([with_title(title, text[a:b]) for a, b in spans])
    return PassageInput(text, score, True, spans, vectors)


def test_each_sentence_gets_one_row_of_every_feature(embedder: Embedder) -> None:
    text = "The carmaker had a strong year. Its profit rose to $2.1bn in the three months to March."
    question = "How much money did the car firm make in the first quarter?"
    candidates, matrix = features(question, embedder.encode_query(question), [passage(text, embedder)])
    assert matrix.shape == (2, len(FEATURES)) and matrix.dtype == np.float32
    assert [text[c.start : c.end] for c in candidates] == ["The carmaker had a strong year.",
                                                           "Its profit rose to $2.1bn in the three months to March."]
    money = FEATURES.index("money_for_money")
    assert matrix[:, money].tolist() == [0.0, 1.0]  # only the second sentence names an amount
    assert matrix[:, FEATURES.index("similarity_gap")].max() == 0.0  # gaps are measured from the best


def test_the_shipped_scorer_prefers_the_sentence_with_the_asked_for_figure(embedder: Embedder) -> None:
    text = ("Shares in the carmaker rose after it reported a strong year for its European plants. "
            "Its net profit climbed to $2.1bn in the three months to March, from $1.4bn a year earlier.")
    question = "How much did the car manufacturer earn in its first quarter?"
    candidates, matrix = features(question, embedder.encode_query(question), [passage(text, embedder)])
    logits = default_scorer().logits(matrix)
    assert "$2.1bn" in text[candidates[int(np.argmax(logits))].start : candidates[int(np.argmax(logits))].end]


def test_scorer_weights_round_trip_through_json_and_refuse_other_features() -> None:
    scorer = default_scorer()
    assert Scorer.from_json(json.loads(json.dumps(scorer.to_json()))) == scorer
    other = {**scorer.to_json(), "features": ["similarity"]}
    with pytest.raises(ValueError, match="train_scorer"):
        Scorer.from_json(other)
