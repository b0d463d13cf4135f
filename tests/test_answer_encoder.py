"""The answer encoder: the default model tuned by the shipped adapter to compare questions with answer sentences."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa import Library
from qa.embed import ADAPTER_FILE, Embedder
from qa.errors import ConfigError
from qa.evaluate import Question, read_dataset
from qa.passages import Splitter
from qa.sentences import with_title

SEED_QUESTIONS = Path(__file__).resolve().parent.parent / "bench" / "data" / "seed-paraphrase" / "tune.jsonl"


def test_the_default_model_compares_answers_with_its_tuned_copy(embedder: Embedder) -> None:
    tuned = embedder.answers
    assert tuned is not embedder and tuned.adapter == ADAPTER_FILE
    assert tuned.identity.startswith(embedder.model_name + "+") and embedder.identity == embedder.model_name
    assert embedder.answers is tuned  # made once


def test_without_an_adapter_answers_use_the_model_as_it_is() -> None:
    plain = Embedder(answers_adapter=None)
    assert plain.answers is plain
    assert Embedder("some/other-model").answers.adapter is None


def candidates(library: Library, question: Question) -> tuple[list[str], list[str]]:
    """The sentences of the question's top 10 passages: (with their titles, as they are)."""
    splitter = Splitter()
    titled, texts = [], []
    for hit in library.retrieve(question.question, 10, "dense"):
        for span in splitter.sentences(hit.text):
            texts.append(hit.text[span.start : span.end])
            titled.append(with_title(hit.citation.title, texts[-1]))
    return titled, texts


def answers_first(model: Embedder, asked: list[tuple[Question, list[str], list[str]]]) -> int:
    """How many questions the sentence of their candidates most similar to them under `model` answers.

    The candidates of all questions are embedded in one call: the top passages of the questions overlap.
    """
    unique = sorted({sentence for _, titled, _ in asked for sentence in titled})
    vectors = dict(zip(unique, model.encode_sentences(unique), strict=True))
    found = 0
    for question, titled, texts in asked:
        scores = np.stack([vectors[sentence] for sentence in titled]) @ model.encode_query(question.question)[0]
        best = int(np.argmax(scores))
        found += any(answer.lower() in texts[best].lower() for answer in question.answers)
    return found


def test_the_tuned_copy_finds_more_answering_sentences_in_the_seed_article(
    embedder: Embedder, seed_library: Library
) -> None:
    questions = [q for q in read_dataset(SEED_QUESTIONS, False)[1] if q.answers]
    asked = [(q, *candidates(seed_library, q)) for q in questions]
    plain, tuned = answers_first(embedder, asked), answers_first(embedder.answers, asked)
    assert tuned >= plain + 2, (plain, tuned)


def test_a_broken_adapter_is_a_clear_error(tmp_path: Path) -> None:
    broken = tmp_path / "adapter.npz"
    broken.write_bytes(b"not an adapter")
    tuned = Embedder(adapter=broken, answers_adapter=None)
    with pytest.raises(ConfigError, match="does not fit the model"):
        tuned.encode_sentences(["A sentence."])
    assert np.load(ADAPTER_FILE).files  # the shipped one loads


def test_the_tuned_copy_has_its_own_onnx_export(embedder: Embedder, tmp_path: Path) -> None:
    from qa.onnx_encoder import cache_folder

    tuned = embedder.answers
    assert cache_folder(tuned.model_path, tmp_path, tuned.adapter_digest) != cache_folder(embedder.model_path, tmp_path)
    assert embedder.adapter_digest == "" and len(tuned.adapter_digest) == 16
