"""The answer encoder: the default model tuned by the shipped adapter to compare questions with answer sentences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa.embed import ADAPTER_FILE, Embedder
from qa.errors import ConfigError
from qa.sentences import with_title


def test_the_default_model_compares_answers_with_its_tuned_copy(embedder: Embedder) -> None:
    tuned = embedder.answers
    assert tuned is not embedder and tuned.adapter == ADAPTER_FILE
    assert tuned.identity.startswith(embedder.model_name + "+") and embedder.identity == embedder.model_name
    assert embedder.answers is tuned  # made once


def test_without_an_adapter_answers_use_the_model_as_it_is() -> None:
    plain = Embedder(answers_adapter=None)
    assert plain.answers is plain
    assert Embedder("some/other-model").answers.adapter is None


def test_the_tuned_copy_ranks_the_answering_sentence_above_the_restating_one(embedder: Embedder) -> None:
    title = "Lennon's last studio to close"
    question = "Who founded the Manhattan recording studio where John Lennon spent his final hours?"
    restates = with_title(
        title, "The New York music studio where John Lennon spent his final hours is to close next month."
    )
    answers = with_title(title, "The studio was founded by Jerry Ragovoy in 1968.")
    for model, answer_first in ((embedder, False), (embedder.answers, True)):
        q = model.encode_query(question)[0]
        restating, answering = model.encode_sentences([restates, answers]) @ q
        assert (answering > restating) == answer_first


def test_a_broken_adapter_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "adapter.npz"
    broken.write_bytes(b"not an adapter")
    tuned = Embedder(adapter=broken, answers_adapter=None)
    with pytest.raises(ConfigError, match="does not fit the model"):
        tuned.encode_sentences(["A sentence."])
    assert np.load(ADAPTER_FILE).files  # the shipped one loads
