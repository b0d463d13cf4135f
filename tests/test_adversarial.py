"""No input makes the assistant's text handling hang: every function that runs a regular expression
(or the sentence segmenter) over article text, file names or questions finishes a few MB of hostile
text in a few seconds.

The inputs are the shapes that make a backtracking pattern take time growing with the square of
the input: long runs of spaces, tabs and separators, and repeated prefixes ("1 1 1", "a: a: a:",
"Mr. Mr. Mr."). A linear function takes well under a second on them; a quadratic one takes hours,
so the bound is far from both and the test is not flaky on a busy machine. A SIGALRM stops a
function at the bound (Python's regular expression engine checks for signals while it matches).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

import pytest

from qa import answer, articles, dates, passages, reply, scoring, uploads
from qa.errors import QuestionError
from qa.lexical import terms
from qa.schema import Citation, Hit
from qa.search import clean_question
from qa.terminal import format_hit, json_text, terminal_safe

SECONDS = 10.0  # the bound for each call (the slowest linear reader takes about 2 s on 2 MB; quadratic ones hours)
SIZE = 2_000_000  # characters of each hostile text
SEGMENTER_SIZE = 200_000  # the sentence segmenter reads about 300 kB of news a second: a smaller text

FILLS = {
    "spaces": " ",
    "tabs": "\t",
    "newlines": "\n",
    "blank lines": "\n \n",
    "numbers": "1 ",
    "digits": "1",
    "keys": "a: ",
    "titles": "Mr. ",
    "abbreviations": "Jan. ",
    "months": "1 march ",
    "dots": ".",
    "commas": ", ",
    "dashes": "-",
    "capitals": "A-",
    "apostrophes": "A'",
    "bangs": "!",
    "questions": "?",
    "links": "http://",
    "www": "www.",
    "escapes": "\x1b[",
}


def hostile(fill: str, size: int = SIZE, end: str = "x") -> str:
    """`fill` repeated to `size` characters, then `end` (a character that makes a pattern fail late)."""
    return fill * (size // len(fill)) + end


@contextmanager
def finishes_within(seconds: float) -> Iterator[None]:
    """Fail when the block takes longer than `seconds` (stopped by SIGALRM at the bound)."""

    def stop(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds:.0f} s")

    previous = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.perf_counter()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert time.perf_counter() - started < seconds


def a_hit(text: str) -> Hit:
    cited = Citation("a.txt", text, text, "http://example.org/" + text, None, text, 0, 0, 0, len(text))
    return Hit(1, 1.0, text, cited, (cited,))


def parse_metadata(text: str) -> None:
    articles.parse_text(f"url: a{text}\ndate: {text}\n\nTitle\n\nBody.", "x.txt")
    articles.parse_text(f"---\nauthor:{text}\n---\nTitle\nBody.", "x.md", markdown=True)


def quiet(reader: Callable[[str], object]) -> Callable[[str], object]:
    """`reader`, with our errors (a clear refusal is an answer too) taken as finishing."""

    def read(text: str) -> object:
        try:
            return reader(text)
        except (QuestionError, articles.ArticleError):
            return None

    return read


READERS: dict[str, Callable[[str], object]] = {
    "articles.parse_text (metadata lines)": parse_metadata,
    "articles.parse_jsonl": lambda text: articles.parse_jsonl(text, "x.jsonl"),
    "articles.normalize_date": articles.normalize_date,
    "articles.decode": quiet(lambda text: articles.decode(text.encode(), "x.txt")),
    "dates.read_when": lambda text: dates.read_when("1 march" + text, date(2005, 6, 30)),
    "search.clean_question": quiet(clean_question),
    "passages.paragraphs": passages.paragraphs,
    "uploads.safe_name": lambda text: uploads.safe_name(text + ".txt"),
    "reply.escape_markdown": reply.escape_markdown,
    "reply.fragment_link": lambda text: reply.fragment_link("https://example.org/" + text, text),
    "terminal.terminal_safe": terminal_safe,
    "terminal.format_hit": lambda text: format_hit(a_hit(text)),
    "terminal.json_text": lambda text: json_text({"text": text}),
    "lexical.terms": lambda text: terms([text]),
    "answer.contextual_query": lambda text: answer.contextual_query(text, [text, text]),
    "answer.named_words": answer.named_words,
    "scoring.answer_type": scoring.answer_type,
    "scoring.fine_type": scoring.fine_type,
    "scoring.has_type": lambda text: [scoring.has_type(text, kind, "?") for kind in ("time", "number", "name")],
}


@pytest.mark.parametrize("fill", FILLS.values(), ids=FILLS.keys())
@pytest.mark.parametrize("reader", READERS.values(), ids=READERS.keys())
def test_every_text_reader_finishes_a_few_mb_of_hostile_text_in_seconds(
    reader: Callable[[str], object], fill: str
) -> None:
    text = hostile(fill)
    with finishes_within(SECONDS):
        reader(text)


@pytest.mark.parametrize("fill", FILLS.values(), ids=FILLS.keys())
def test_the_sentence_splitter_takes_linear_time_on_hostile_paragraphs(fill: str) -> None:
    splitter = passages.Splitter()
    splitter.sentences("Warm up the segmenter. It loads its rules once.")
    # A run of `fill` ending in "x" once every SEGMENT_CHARS: the worst place for a run to end.
    unit = hostile(fill, passages.SEGMENT_CHARS - 1)
    with finishes_within(SECONDS):
        spans = splitter.sentences(unit * (SEGMENTER_SIZE // len(unit)))
    assert all(span.end > span.start for span in spans)


def test_a_metadata_line_with_a_long_blank_run_is_read_in_linear_time() -> None:
    text = "url: https://example.org/a" + " " * 5_000_000 + "b\nTitle\n\nBody."
    with finishes_within(SECONDS):
        found = articles.parse_text(text, "x.txt")
    assert found.url == "https://example.org/a" + " " * 5_000_000 + "b" and found.title == "Title"


def test_metadata_lines_are_read_as_before() -> None:
    assert articles.meta_line("  URL :  https://example.org/x  ") == ("url", "https://example.org/x")
    assert articles.meta_line("Published: 2024-05-01") == ("published", "2024-05-01")
    assert articles.meta_line("Breaking: news") is None  # not a metadata key
    assert articles.meta_line("no colon here") is None


def test_a_date_with_a_long_blank_run_is_read_in_linear_time() -> None:
    with finishes_within(SECONDS):
        when = dates.read_when("what happened on 1 march" + " " * 5_000_000 + "x", date(2005, 6, 30))
    assert not when
    assert dates.read_when("news of 1 march, 2005?", None).start == date(2005, 3, 1)


def test_a_long_question_is_cleaned_and_checked_before_its_dates_are_read(seed_library) -> None:  # noqa: ANN001
    with finishes_within(SECONDS):
        hits = seed_library.retrieve("Who won on 1 march" + " " * 80_000 + "?", k=1)
    assert len(hits) == 1
    with finishes_within(SECONDS), pytest.raises(QuestionError, match="at most 2,000 characters"):
        seed_library.retrieve("1 march " + "\t" * 5_000_000 + "x", k=1)
    with finishes_within(SECONDS), pytest.raises(QuestionError, match="at most 2,000 characters"):
        seed_library.retrieve("1 march 2005 " * 200, k=1)


def test_the_chat_cleans_a_question_and_its_history_before_answering(seed_library) -> None:  # noqa: ANN001
    from qa.web import ChatApp

    chat = ChatApp(seed_library, watch=None)
    with finishes_within(SECONDS):
        reply_text = chat.reply("1 march" + " " * 5_000_000 + "x", 1, ["1 march" + " " * 5_000_000 + "x"] * 1000)
    assert reply_text.startswith("⚠️ The question is") and "at most 2,000 characters" in reply_text
    with finishes_within(SECONDS):
        found = chat.hits("Who interviewed Maduro on 1 march" + " " * 80_000 + "?", 1)
    assert found["question"] == "Who interviewed Maduro on 1 march ?" and len(found["hits"]) == 1


def test_the_command_line_refuses_a_long_question_before_any_work(articles: Path, tmp_path: Path) -> None:
    from tests.test_cli import qa

    asked = qa("ask", "1 march" + " " * 100_000 + "x", "--articles", str(articles), "--index", str(tmp_path / "i"))
    assert asked.returncode == 2 and "at most 2,000 characters" in asked.stderr and "Traceback" not in asked.stderr
    assert not (tmp_path / "i" / "index.sqlite").exists()  # refused before the index was built
