"""Command line: `python -m qa index`, `ask`, `timeline`, `related`, `check`, `eval` and `feedback export`.

A thin shell over `Library`.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .assistant import Library
from .config import VARIABLES, Settings
from .errors import ConfigError, QAError, QuestionError
from .progress import ProgressLine
from .related import NEAR_COPY
from .schema import Filters
from .search import MODES, clean_question
from .terminal import format_answer, format_hit, format_related, format_timeline, json_text, say, terminal_safe
from .timeline import MAX_ENTRIES, TIMELINE_ENTRIES

EXIT_OK, EXIT_ERROR, EXIT_USAGE = 0, 1, 2
def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m qa",
        description="Ask questions about a folder of news articles, offline.",
        epilog="Environment: " + ", ".join(variable.name for variable in VARIABLES) + " (see the README's "
        "configuration table). Flags win over the environment.",
    )
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def folders(command: argparse.ArgumentParser) -> None:
        command.add_argument("--articles", metavar="DIR", help="articles folder (default: $QA_ARTICLES_DIR or seeds/)")
        command.add_argument("--index", metavar="DIR", help="index folder (default: $QA_INDEX_DIR or index/)")
        command.add_argument("--model", metavar="NAME", help="embedding model: a name or a local folder ($QA_MODEL)")
        command.add_argument("--store", metavar="STORE", help="faiss, milvus-lite:PATH or milvus://HOST:PORT "
                             "(default: $QA_STORE or faiss)")
        command.add_argument("-v", "--verbose", action="store_true", help="log what happens")

    index = commands.add_parser(
        "index", help="build or update the index", description="Sync the index with the articles folder: "
        "embed new and changed articles, drop deleted ones, keep the rest."
    )
    folders(index)
    index.add_argument("--rebuild", action="store_true", help="rebuild everything from scratch")
    index.add_argument("--worker", metavar="I/N", type=_share, help="only embed share I of N (1-based) into the "
                       "store's vector cache, then stop; run N of them side by side, then a plain `qa index`")
    index.add_argument("--to", metavar="STORE", help="after syncing, copy the index into another store (e.g. "
                       "milvus-lite:index/milvus.db or milvus://host:19530) without embedding anything again")

    check = commands.add_parser(
        "check", help="verify the index", description="Check the index: FAISS ids against SQLite passages, the "
        "manifest, and every passage's span against its article text. Exit 0 when consistent, 1 otherwise."
    )
    folders(check)

    evaluation = commands.add_parser(
        "eval", help="measure answers and retrieval on a labelled set",
        description="Index DATASET/passages.jsonl as given (one passage each), or with --articles a folder of "
        "articles, and ask the questions of DATASET/questions.jsonl (or of the questions file DATASET): "
        "recall@1/5/10, MRR@10, nDCG@10 by passage id, answer recall@1/5, questions per second; and for the "
        "composed answers (5 sources each) how often an answer string is in the quoted sentences, the first "
        "quote, the first source and the sources, how many answerable questions were refused, and how many "
        "off-topic ones (no answers) were.",
    )
    evaluation.add_argument("dataset", metavar="DATASET")
    evaluation.add_argument("--articles", metavar="DIR", help="ask the questions over this folder of articles")
    evaluation.add_argument("--answers", metavar="N", default="all",
                            help="compose answers for N questions spread over the set, 'all' or 0 (default: all)")
    evaluation.add_argument("--mode", choices=[*MODES, "all"], default="all", help="which mode(s) (default: all)")
    evaluation.add_argument("-k", "--k", type=int, default=10, help="passages per question (default 10)")
    evaluation.add_argument("--json", metavar="OUT", help="also write the figures as JSON to OUT")
    evaluation.add_argument("--index", metavar="DIR", help="keep the index here (default: a temporary folder); "
                            "a kept index makes the next run reuse its embeddings")
    evaluation.add_argument("--model", metavar="NAME", help="embedding model ($QA_MODEL)")
    evaluation.add_argument("--limit", type=int, metavar="N", help="only the first N questions")
    evaluation.add_argument("--store", choices=("faiss", "milvus-lite"), help="index store (default: $QA_STORE)")
    evaluation.add_argument("-v", "--verbose", action="store_true", help="log what happens")

    ask = commands.add_parser(
        "ask", help="ask a question",
        description="Print the short answer to QUESTION (the quoted sentences with [n] markers) and its numbered "
        "sources, or that the articles don't seem to cover it.",
    )
    ask.add_argument("question", help="the question, in quotes")
    ask.add_argument("-k", type=int, default=5, metavar="N", help="how many sources or passages (1-100, default 5)")
    ask.add_argument("--passages", action="store_true", help="print the best passages only, without an answer")
    ask.add_argument("--json", action="store_true",
                     help="print one JSON object instead of text (quotes, sources and found; with --passages the hits)")
    ask.add_argument("--mode", choices=MODES, help="dense, bm25 or hybrid (default: $QA_MODE or hybrid)")
    ask.add_argument("--source", action="append", default=[], metavar="NAME",
                     help="only articles from this publisher or source folder (repeatable)")
    ask.add_argument("--article", action="append", default=[], metavar="ID_OR_TITLE",
                     help="only this article id, or articles whose title contains these words (repeatable)")
    ask.add_argument("--date-from", metavar="YYYY-MM-DD", help="only articles dated on or after this day")
    ask.add_argument("--date-to", metavar="YYYY-MM-DD", help="only articles dated on or before this day")
    folders(ask)

    timeline = commands.add_parser(
        "timeline", help="how a story unfolded, by date",
        description="Print the timeline of TOPIC: one quoted sentence per passage about it, with its article, "
        "paragraph and character span, oldest first; near-copies once, citing every article; undated articles "
        "apart. Sentences less similar to the topic than an answer must be to its question are left out.",
    )
    timeline.add_argument("topic", help='the story, in quotes: "the rail strike" or "How did the rail strike unfold?"')
    timeline.add_argument("--limit", type=int, default=TIMELINE_ENTRIES, metavar="N",
                          help=f"at most N entries, the most similar (1-{MAX_ENTRIES}, default {TIMELINE_ENTRIES})")
    timeline.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    timeline.add_argument("--mode", choices=MODES, help="dense, bm25 or hybrid (default: $QA_MODE or hybrid)")
    folders(timeline)

    related = commands.add_parser(
        "related", help="list the articles closest to an article",
        description="Print the articles closest to ARTICLE_ID, closest first: the cosine similarity of the "
        f"articles' mean passage vectors. Near-copies (the same title, or a similarity of {NEAR_COPY} or more) are "
        "left out.",
    )
    related.add_argument("article_id", metavar="ARTICLE_ID", help="the article's path in the articles folder "
                         "(FILE.jsonl#ID or FILE.jsonl:LINE for a record), as `ask --json` shows it")
    related.add_argument("-k", type=int, default=3, metavar="N", help="how many articles (1-20, default 3)")
    related.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    folders(related)

    feedback = commands.add_parser(
        "feedback", help="the readers' ratings of answers and sources",
        description="Work with the thumbs up / down readers gave in the chat (kept in INDEX/ratings.sqlite).",
    )
    actions = feedback.add_subparsers(dest="action", required=True, metavar="ACTION")
    exported = actions.add_parser(
        "export", help="write the ratings as a qa eval dataset",
        description="Write OUT/questions.jsonl (one question per rated question: the sentences of the passages "
        "rated helpful as answers, those passages as gold, the sources rated wrong as hard_negatives; a "
        "\"not found\" rated helpful makes an off-topic question), OUT/kept-apart.jsonl (rated questions with no "
        "passage known to answer them) and OUT/meta.json. Then: python -m qa eval OUT --articles DIR.",
    )
    exported.add_argument("out", metavar="OUT", help="the folder to write (created if missing)")
    folders(exported)
    return top


class _TerminalSafeFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().format(record))


PROCESS_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",  # the model is a local folder: never ask the network
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",  # no loading bars between the command's own lines
    "TOKENIZERS_PARALLELISM": "false",  # no fork warnings from the tokenizers' thread pool
    "GRADIO_ANALYTICS_ENABLED": "False",  # the chat page reports nothing anywhere
    "GRPC_VERBOSITY": "NONE",  # milvus-lite's in-process gRPC logs keep-alive chatter
}


def configure_process() -> None:
    """Environment defaults for an entry point, set before any model library is imported (a set value wins)."""
    for name, value in PROCESS_ENVIRONMENT.items():
        os.environ.setdefault(name, value)


def configure_logging(verbose: bool, lists_problems: bool = False) -> None:
    """Logging for an entry point: warnings (or everything with -v) on standard error, `terminal_safe`.

    `lists_problems`: the command prints skipped files itself, so the loader's warnings are muted.
    """
    level = logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)  # bm25s sets its own logger to DEBUG when it is imported
        handler.setFormatter(_TerminalSafeFormatter("%(levelname)s %(name)s: %(message)s"))
    if not verbose:
        logging.getLogger("trafilatura").setLevel(logging.CRITICAL)  # broken pages are reported by name, once
        logging.getLogger("pymilvus").setLevel(logging.CRITICAL)  # its errors reach us as exceptions
        if lists_problems:
            logging.getLogger("qa.articles").setLevel(logging.ERROR)


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_process()
    configure_logging(args.verbose, lists_problems=args.command == "index")
    try:
        if args.command == "eval":
            return run_eval(args)
        settings = Settings.from_env(
            articles_dir=args.articles, index_dir=args.index, model=args.model, store=args.store
        )
        library = Library(settings)
        if args.command == "index" and args.worker:
            return run_worker(library, *args.worker)
        if args.command == "index":
            return run_index(library, args.rebuild) or (run_copy(library, args.to) if args.to else EXIT_OK)
        if args.command == "check":
            return run_check(library)
        if args.command == "timeline":
            found = library.timeline(args.topic, args.limit, args.mode)
            say(json_text(found.to_json()) if args.json else format_timeline(found))
            return EXIT_OK
        if args.command == "feedback":
            done = library.export_ratings(args.out)
            say(f"{done.answerable} answerable and {done.off_topic} off-topic questions written to "
                f"{Path(done.folder) / 'questions.jsonl'}; {done.kept_apart} kept apart in kept-apart.jsonl")
            return EXIT_OK
        if args.command == "related":
            return run_related(library, args.article_id, args.k, args.json)
        filters = Filters(tuple(args.source), tuple(args.article), args.date_from, args.date_to)
        return run_ask(library, args.question, args.k, args.json, args.mode, filters, args.passages)
    except QuestionError as error:
        say(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except QAError as error:
        say(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        say("interrupted; the index is as it was before this run (embedded passages are kept for next time)",
              file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `python -m qa ask ... | head -1`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as error:  # disk full, permission denied: the system's words, without a traceback
        say(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR


def run_index(library: Library, rebuild: bool) -> int:
    shown = ProgressLine(sys.stderr)
    try:
        report = library.sync(rebuild=rebuild, progress=shown)
    finally:
        shown.close()
    for problem in report.problems:
        say(f"{'skipped' if problem.skipped else 'warning'}: {problem}", file=sys.stderr)
    say(report.summary())
    health = library.status().health
    if health and health.articles:
        say(
            f"Self-check: {health.articles} article(s) searched by their headline: own article first "
            f"{health.recall_at_1:.0%}, in the top 5 {health.recall_at_5:.0%}"
        )
    say(f"Index: {library.settings.index_location}  Articles: {library.settings.articles_dir}")
    return EXIT_OK


def run_eval(args: argparse.Namespace) -> int:
    from .evaluate import evaluate, table

    modes = MODES if args.mode == "all" else (args.mode,)
    settings = Settings.from_env(model=args.model)
    if args.answers not in ("all",) and not args.answers.isdigit():
        raise ConfigError(f"--answers {args.answers!r}: give a number of questions, 'all' or 0.")
    result = evaluate(
        Path(args.dataset), modes, args.k, Path(args.index) if args.index else None, settings, limit=args.limit,
        progress=lambda line: say(line, file=sys.stderr), store=args.store,
        articles=Path(args.articles) if args.articles else None,
        answers=None if args.answers == "all" else int(args.answers),
    )
    say(f"{result['passages']} passages, {result['questions']} questions, model {settings.model}")
    say(table(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return EXIT_OK


def _share(text: str) -> tuple[int, int]:
    """"I/N" -> (I - 1, N) for `--worker`."""
    try:
        worker, workers = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not I/N, e.g. 1/2 for the first of two workers") from None
    if not 1 <= worker <= workers:
        raise argparse.ArgumentTypeError(f"{text!r}: I must be between 1 and N")
    return worker - 1, workers


def run_worker(library: Library, worker: int, workers: int) -> int:
    """Embed one share of what the next sync needs into the vector cache (see `qa.build.embed_share`)."""
    started = time.perf_counter()
    shown = ProgressLine(sys.stderr)
    try:
        embedded = library.embed_share(worker, workers, progress=shown)
    finally:
        shown.close()
    seconds = time.perf_counter() - started
    say(f"Worker {worker + 1}/{workers}: {embedded} passages embedded in {seconds:.1f} s "
          f"({embedded / seconds:.1f} passages/s). Run `python -m qa index` once every worker is done.")
    return EXIT_OK


def run_copy(library: Library, target: str) -> int:
    """Copy the synced index into the store `target` names, without embedding anything again."""
    started = time.perf_counter()
    copied = library.copy_to(target)
    say(f"Copied {copied} passages into {target} in {time.perf_counter() - started:.1f} s (nothing re-embedded).")
    return EXIT_OK


def run_check(library: Library) -> int:
    found = library.check()
    if found.ok:
        say(f"OK: {found.articles} articles, {found.passages} passages in {found.location}")
        if found.encoder:
            say(f"Vectors made with {found.encoder.summary()}")
        return EXIT_OK
    for problem in found.problems:
        say(f"problem: {problem}")
    say("Run `python -m qa index --rebuild` to rebuild the index from the articles.")
    return EXIT_ERROR


def run_related(library: Library, article_id: str, k: int, as_json: bool) -> int:
    found = library.related(article_id, k)
    if as_json:
        say(json_text({"article_id": article_id, "related": [article.to_json() for article in found]}))
        return EXIT_OK
    if not found:
        say("No other article in the index (near-copies are left out).")
    for rank, article in enumerate(found, 1):
        say(format_related(rank, article))
    return EXIT_OK


def run_ask(
    library: Library, question: str, k: int, as_json: bool, mode: str | None, filters: Filters, passages: bool = False
) -> int:
    question = clean_question(question)
    library.ensure_index()
    if not passages:
        answer = library.answer(question, k, mode=mode, filters=filters or None)
        say(json_text(answer.to_json()) if as_json else format_answer(answer))
        return EXIT_OK
    hits = library.retrieve(question, k, mode, filters or None)
    if as_json:
        say(json_text({"question": question, "hits": [hit.to_json() for hit in hits]}))
        return EXIT_OK
    if not hits:
        say("No passages: the index is empty. Add articles to the articles folder and run `python -m qa index`.")
    for hit in hits:
        say(format_hit(hit))
    return EXIT_OK
