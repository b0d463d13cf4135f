"""Train the answer adapter (`qa/answer_adapter.npz`): low-rank changes to the embedding model's weights
that make a question's vector closest to the sentence holding its answer, reproducibly.

The bundled all-MiniLM-L6-v2 was trained to match texts on the same topic: given a reader's question,
it ranks the sentence that restates the question's story above the sentence that answers it. The
adapter tunes a copy of it for one job, comparing questions with answer sentences (each read after its
article's title); the passages are searched with the model as it is, and their sentences compared
with the question under the tuned copy (`qa.rerank`, `qa.answer`).

Training data, as for `bench.train_scorer`: the 900 news questions of the files of `bench/data/bbc-train`
named in `NEWS_FILES` (seen twice) and 1,300 drawn from the even half of SQuAD dev. For each, the
positive is the titled sentence of its candidate passages (`qa.answer.Composer.candidate_hits`, first
search stage only) that holds the answer and is most similar to the question under the unchanged
model; the hard negatives are the seven most similar
sentences that do not hold it. The loss is the softmax over the batch's positives and three negatives
per question (in-batch negatives, temperature 0.05); the model's linear layers get rank-8 updates
(LoRA, 331,776 numbers, stored as float16: about 0.7 MB), trained one epoch with AdamW, learning rate
1e-3 decaying linearly, batches of 16, on two CPU threads with fixed seeds.

Usage: `python -m bench.train_answer_encoder --corpus DIR --squad DIR [--work DIR] [--out qa/answer_adapter.npz]`
(about 20 minutes on two cores once the indexes exist; then run `python -m bench.train_scorer`, whose
similarity features come from the tuned model).
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
from pathlib import Path

import numpy as np

from bench.train_scorer import add_arguments, training_sets
from qa.answer import Composer
from qa.assistant import Library
from qa.embed import ADAPTER_FILE, ADAPTER_RANK, ADAPTER_SCALE, ADAPTER_TARGETS, Embedder
from qa.evaluate import Question
from qa.scoring import MIN_SENTENCE_WORDS
from qa.sentences import with_title

SEED = 0
NEGATIVES = 7  # hard negatives kept per question
NEGATIVES_PER_STEP = 3  # drawn from them for each step
BATCH = 16
LEARNING_RATE = 1e-3
TEMPERATURE = 0.05
NEWS_REPEATS = 2
WIKIPEDIA_QUESTIONS = 1300
NEWS_FILES = (  # the scorer also reads the other files of bench/data/bbc-train
    "business-tech", "more-business-politics", "more-sport", "more-tech-entertainment", "politics-entertainment",
    "sport",
)


def triples(library: Library, questions: list[Question]) -> list[tuple[str, str, list[str]]]:
    """(question, titled answer sentence, titled hard negatives) for each question whose candidates hold it."""
    composer = Composer(library)
    found = []
    for question in questions:
        hits = composer.candidate_hits(question.question, mode="hybrid")
        candidates, matrix = composer.features(question.question, question.question, hits)
        titled, holds = [], []
        for candidate in candidates:
            hit = hits[candidate.passage]
            text = hit.text[candidate.start : candidate.end]
            titled.append(with_title(hit.citation.title, text))
            holds.append(any(answer.lower() in text.lower() for answer in question.answers))
        order = [at for at in np.argsort(-matrix[:, 0], kind="stable") if candidates[at].words >= MIN_SENTENCE_WORDS]
        positives = [at for at in order if holds[at]]
        if positives:
            negatives = [titled[at] for at in order if not holds[at]][:NEGATIVES]
            found.append((question.question, titled[positives[0]], negatives))
    return found


def train(data: list[tuple[str, str, list[str]]], model_name: str) -> dict[str, np.ndarray]:
    """The low-rank weight changes, fitted on `data` (see the module's docstring)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from torch import nn

    from qa.embed import resolve_model

    torch.manual_seed(SEED)
    torch.set_num_threads(2)
    rng = random.Random(SEED)

    class LowRank(nn.Module):
        def __init__(self, base: nn.Linear) -> None:
            super().__init__()
            self.base = base
            self.a = nn.Parameter(torch.randn(ADAPTER_RANK, base.in_features) / math.sqrt(base.in_features))
            self.b = nn.Parameter(torch.zeros(base.out_features, ADAPTER_RANK))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.base(x) + (x @ self.a.T @ self.b.T) * ADAPTER_SCALE

    model = SentenceTransformer(resolve_model(model_name), device="cpu")
    bert = model[0].auto_model
    for parameter in bert.parameters():
        parameter.requires_grad = False
    adapted: dict[str, LowRank] = {}
    for name, module in list(bert.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.Linear) and full.endswith(ADAPTER_TARGETS):
                adapted[full] = LowRank(child)
                setattr(module, child_name, adapted[full])
    parameters = [p for layer in adapted.values() for p in (layer.a, layer.b)]
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=0.0)

    def embed(texts: list[str]) -> torch.Tensor:
        return nn.functional.normalize(model(model.tokenize(texts))["sentence_embedding"], dim=-1)

    order: list[int] = []
    while len(order) < len(data):
        block = list(range(len(data)))
        rng.shuffle(block)
        order += block
    steps = len(data) // BATCH
    model.train()
    started = time.perf_counter()
    for step in range(steps):
        batch = [data[at] for at in order[step * BATCH : (step + 1) * BATCH]]
        negatives = [text for _, _, own in batch for text in rng.sample(own, min(NEGATIVES_PER_STEP, len(own)))]
        questions = embed([question for question, _, _ in batch])
        sentences = embed([positive for _, positive, _ in batch] + negatives)
        loss = nn.functional.cross_entropy(questions @ sentences.T / TEMPERATURE, torch.arange(len(batch)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        for group in optimizer.param_groups:
            group["lr"] = LEARNING_RATE * (1 - (step + 1) / steps)
        if step % 20 == 0:
            seconds = time.perf_counter() - started
            print(f"step {step}/{steps}: loss {loss.item():.3f} ({seconds:.0f} s)", file=sys.stderr)
    return {
        f"{name}.{part}": getattr(layer, part).detach().numpy().astype(np.float16)
        for name, layer in adapted.items() for part in ("a", "b")
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_arguments(parser, "/tmp/qa-train-scorer")
    parser.add_argument("--out", type=Path, default=ADAPTER_FILE, help="the adapter file to write")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    embedder = Embedder(answers_adapter=None)  # the negatives are what the unchanged model confuses
    libraries = training_sets(args, embedder, NEWS_FILES, rerank=False)
    sets = {name: triples(library, questions) for name, library, questions in libraries}
    wikipedia = random.Random(SEED).sample(sets["wikipedia"], min(WIKIPEDIA_QUESTIONS, len(sets["wikipedia"])))
    data = sets["news"] * NEWS_REPEATS + wikipedia
    print(f"{len(sets['news'])} news and {len(wikipedia)} Wikipedia questions with their answer among the "
          f"candidates ({time.perf_counter() - started:.0f} s)", file=sys.stderr)
    deltas = train(data, embedder.model_name)
    np.savez_compressed(args.out, **deltas)
    print(f"wrote {args.out} ({sum(d.size for d in deltas.values())} numbers) in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
