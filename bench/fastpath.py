"""Fast embedding paths against fp32 PyTorch: speed-up, vector agreement and retrieval effect.

    python -m bench.fastpath --corpus DIR [--squad-dir DIR] [--quick] [--bbc N] [--squad N] [--json OUT]

Paths: PyTorch fp32 (the reference), PyTorch under bfloat16 autocast ("bf16"), and for questions
the model exported to ONNX and run with onnxruntime, in fp32 ("onnx") and with int8 MatMul weights
("onnx-int8"); "bf16 + onnx" is bf16 passages with ONNX questions.

- Speed: passages/s over the first passages of the BBC set (fp32, bf16, and the fp32 ONNX graph,
  QA_PASSAGE_ENCODER=onnx), alternating the order over rounds; milliseconds per single question
  over the BBC paraphrase questions, the paths interleaved question by question. Medians.
- Agreement: cosine of each path's vectors with fp32 PyTorch's, mean and min, on the passages and
  questions of both evaluation sets.
- Effect: dense retrieval (exact inner product) on the BBC paraphrase set (its gold articles plus the
  first articles up to N paragraph passages; 2,000 by default) and on a SQuAD v1.1 dev subset (the
  first N passages and their questions; 400 by default): recall@5 and MRR@10 for each path against
  fp32 on the same passages and questions in the same run. Dense only: hybrid search dilutes the
  effect of the embedding with BM25's ranks, so this bounds the change in hybrid figures.

`--quick` uses 300 BBC and 80 SQuAD passages, 32 speed passages and 24 timed questions.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qa.embed import Embedder, Vectors, native_bf16
from qa.evaluate import Question, metrics
from qa.onnx_encoder import agreement

from .bbc import add_corpus_argument, require_corpus
from .bbc_dataset import build_passages, read_jsonl
from .corpus import QUESTIONS, median, write_json

PATHS = ("fp32", "bf16", "onnx", "onnx-int8", "bf16 + onnx")
Dataset = tuple[list[dict[str, str]], list[Question]]


def bbc_set(corpus: Path, limit: int) -> Dataset:
    """The BBC paraphrase questions, their gold articles' passages, then whole articles up to `limit` passages."""
    passages, _, _ = build_passages(corpus)
    raw = read_jsonl(QUESTIONS)
    questions = [Question(str(q["id"]), str(q["question"]), tuple(q["answers"]), frozenset(q["passage_ids"]))  # type: ignore[arg-type]
                 for q in raw]
    gold = {passage_id.split("#")[0] for q in questions for passage_id in q.gold}
    chosen = [p for p in passages if p["id"].split("#")[0] in gold]
    for passage in passages:
        if len(chosen) >= limit:
            break
        if passage["id"].split("#")[0] not in gold:
            chosen.append(passage)
    return chosen, questions


def squad_set(folder: Path, limit: int) -> Dataset:
    """The first `limit` SQuAD dev passages in `folder` and the questions whose gold passage is among them."""
    passages = [{"id": str(r["id"]), "title": str(r["title"]), "text": str(r["text"])}
                for r in read_jsonl(folder / "passages.jsonl")][:limit]
    kept = {p["id"] for p in passages}
    questions = [Question(str(r["id"]), str(r["question"]), tuple(r["answers"]), frozenset(r["passage_ids"]))  # type: ignore[arg-type]
                 for r in read_jsonl(folder / "questions.jsonl") if set(r["passage_ids"]) <= kept]  # type: ignore[arg-type]
    return passages, questions


def timed(encode: Callable[[list[str]], Vectors], texts: list[str]) -> tuple[float, Vectors]:
    started = time.perf_counter()
    vectors = encode(texts)
    return time.perf_counter() - started, vectors


def scores(passages: list[dict[str, str]], questions: list[Question], p: Vectors, q: Vectors) -> dict[str, float]:
    """recall@5 and MRR@10 (percent) of exact dense search."""
    top = np.argsort(-(q @ p.T), axis=1)[:, :10]
    ranked = [[passages[i]["id"] for i in row] for row in top]
    texts = [[passages[i]["text"] for i in row] for row in top]
    found = metrics(ranked, texts, questions)
    return {"recall@5": round(100 * found["recall@5"], 2), "mrr@10": round(100 * found["mrr@10"], 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fastpath", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sets (about a minute on 2 idle cores)")
    parser.add_argument("--bbc", type=int, help="BBC passages searched (default 2000; 300 with --quick)")
    parser.add_argument("--squad", type=int, help="SQuAD dev passages searched (default 400; 80 with --quick)")
    parser.add_argument("--squad-dir", type=Path, metavar="DIR",
                        help="SQuAD v1.1 dev in the qa eval format (passages.jsonl, questions.jsonl); without it, "
                        "only the BBC set is measured")
    parser.add_argument("--rounds", type=int, default=2, help="speed rounds, alternating the order (default 2)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    add_corpus_argument(parser)
    args = parser.parse_args(argv)
    corpus = require_corpus(args.corpus)
    speed_count, timed_questions = (32, 24) if args.quick else (256, 120)

    fp32 = Embedder(precision="fp32", query_encoder="torch", passage_encoder="torch")
    bf16 = Embedder(precision="bf16", query_encoder="torch", passage_encoder="torch")
    onnx = Embedder(precision="fp32", query_encoder="onnx", passage_encoder="onnx")
    int8 = Embedder(precision="fp32", query_encoder="onnx-int8", passage_encoder="torch")
    for embedder in (fp32, bf16, onnx, int8):
        embedder.warm_up()
        embedder.encode(["Warm-up passage: the model loads and runs once before anything is timed."])
    paths = {name: embedder.paths().summary() for name, embedder in
             (("fp32", fp32), ("bf16", bf16), ("onnx", onnx), ("onnx-int8", int8))}
    if not bf16.paths().passages.endswith("bf16"):
        print(f"note: bf16 is not in use here ({paths['bf16']}); its rows show fp32", file=sys.stderr)

    sets = {"bbc-paraphrase": bbc_set(corpus, args.bbc or (300 if args.quick else 2000))}
    if args.squad_dir and (args.squad_dir / "passages.jsonl").is_file():
        sets["squad-dev"] = squad_set(args.squad_dir, args.squad or (80 if args.quick else 400))
    else:
        print(f"note: no SQuAD dev set in {args.squad_dir}; measuring the BBC set only", file=sys.stderr)

    # speed: passages
    sample = [p["text"] for p in sets["bbc-paraphrase"][0][:speed_count]]
    passage_seconds: dict[str, list[float]] = {"fp32": [], "bf16": [], "onnx": []}
    encoders = {"fp32": fp32.encode, "bf16": bf16.encode, "onnx": onnx.encode}
    for number in range(args.rounds):
        order = list(encoders) if number % 2 == 0 else list(reversed(encoders))
        for name in order:
            passage_seconds[name].append(timed(encoders[name], sample)[0])
    onnx_passages = agreement(onnx.encode(sample), fp32.encode(sample))

    # speed: one question at a time, paths interleaved
    asked = [json.loads(line)["question"] for line in QUESTIONS.read_text(encoding="utf-8").splitlines()
             if line.strip()][:timed_questions]
    single = {"fp32": fp32.encode_query, "bf16": bf16.encode_query, "onnx": onnx.encode_query,
              "onnx-int8": int8.encode_query}
    question_ms: dict[str, list[float]] = {name: [] for name in single}
    for number, question in enumerate(asked):
        names = list(single)
        for name in names[number % len(names):] + names[: number % len(names)]:
            question_ms[name].append(1000 * timed(lambda texts, f=single[name]: f(texts[0]), [question])[0])

    # agreement and effect on both sets
    evaluation: dict[str, dict[str, object]] = {}
    for set_name, (passages, questions) in sets.items():
        texts, asked_here = [p["text"] for p in passages], [q.question for q in questions]
        seconds_fp32, p32 = timed(fp32.encode, texts)
        seconds_bf16, p16 = timed(bf16.encode, texts)
        q = {"fp32": fp32.encode_queries(asked_here), "bf16": bf16.encode_queries(asked_here),
             "onnx": onnx.encode_queries(asked_here), "onnx-int8": int8.encode_queries(asked_here)}
        runs = {"fp32": (p32, q["fp32"]), "bf16": (p16, q["bf16"]), "onnx": (p32, q["onnx"]),
                "onnx-int8": (p32, q["onnx-int8"]), "bf16 + onnx": (p16, q["onnx"])}
        evaluation[set_name] = {
            "passages": len(passages),
            "questions": len(questions),
            "passages_per_s": {"fp32": round(len(texts) / seconds_fp32, 1),
                               "bf16": round(len(texts) / seconds_bf16, 1)},
            "agreement_passages": {"bf16": agreement(p16, p32)},
            "agreement_questions": {name: agreement(q[name], q["fp32"]) for name in ("bf16", "onnx", "onnx-int8")},
            "scores": {name: scores(passages, questions, pv, qv) for name, (pv, qv) in runs.items()},
        }

    result = {
        "native_bf16": native_bf16(),
        "paths": paths,
        "speed_passages": len(sample),
        "passages_per_s": {name: round(len(sample) / median(values), 1) for name, values in passage_seconds.items()},
        "passage_speedup": {name: round(median(passage_seconds["fp32"]) / median(values), 2)
                            for name, values in passage_seconds.items()},
        "agreement_onnx_passages": onnx_passages,
        "timed_questions": len(asked),
        "question_ms_p50": {name: round(median(values), 2) for name, values in question_ms.items()},
        "question_speedup": {name: round(median(question_ms["fp32"]) / median(values), 2)
                             for name, values in question_ms.items()},
        "evaluation": evaluation,
    }
    report(result)
    write_json(args.json, result)
    return 0


def report(result: dict[str, object]) -> None:
    """The Markdown tables."""
    evaluation: dict[str, dict[str, object]] = result["evaluation"]  # type: ignore[assignment]
    print(f"native bf16: {result['native_bf16']}; paths: {result['paths']}\n")
    print(f"Speed (medians; passages: {result['speed_passages']} BBC passages, batch 32; "
          f"questions: {result['timed_questions']} one at a time)\n")
    print("| path | passages/s | speed-up | ms per question | speed-up |\n|---|---:|---:|---:|---:|")
    per_s, up = result["passages_per_s"], result["passage_speedup"]
    ms, qup = result["question_ms_p50"], result["question_speedup"]
    for name in ("fp32", "bf16", "onnx", "onnx-int8"):
        passages = f"{per_s[name]} | {up[name]:.2f}x" if name in per_s else "- | -"  # type: ignore[operator]
        print(f"| {name} | {passages} | {ms[name]} | {qup[name]:.2f}x |")  # type: ignore[index]
    print("\nAgreement with fp32 PyTorch (cosine mean / min)\n")
    print("| set | what | bf16 | onnx | onnx-int8 |\n|---|---|---|---|---|")
    onnx_passages = result["agreement_onnx_passages"]
    for set_name, figures in evaluation.items():
        p, q = figures["agreement_passages"], figures["agreement_questions"]
        cell = lambda found: f"{found['mean']:.6f} / {found['min']:.6f}"  # noqa: E731
        onnx_cell = cell(onnx_passages) if set_name == "bbc-paraphrase" else "-"
        print(f"| {set_name} | passages | {cell(p['bf16'])} | {onnx_cell} (speed sample) | - |")  # type: ignore[index]
        print(f"| {set_name} | questions | {cell(q['bf16'])} | {cell(q['onnx'])} | {cell(q['onnx-int8'])} |")  # type: ignore[index]
    print("\nDense retrieval, recall@5 / MRR@10 in percent (difference from fp32)\n")
    print("| set | passages | questions | " + " | ".join(PATHS) + " |\n|---|---:|---:|" + "---|" * len(PATHS))
    for set_name, figures in evaluation.items():
        found = figures["scores"]
        base = found["fp32"]  # type: ignore[index]
        cells = []
        for name in PATHS:
            s = found[name]  # type: ignore[index]
            change = (s["recall@5"] - base["recall@5"], s["mrr@10"] - base["mrr@10"])
            delta = "" if name == "fp32" else f" ({change[0]:+.2f} / {change[1]:+.2f})"
            cells.append(f"{s['recall@5']:.2f} / {s['mrr@10']:.2f}{delta}")
        print(f"| {set_name} | {figures['passages']} | {figures['questions']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    sys.exit(main())
