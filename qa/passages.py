"""Cut an article body into passages of whole sentences with exact character spans.

Sentences come from pysbd (a rule-based segmenter that knows "U.S.", "Mr.", "Jan." and
decimals). Passages are windows of about `words` words that never exceed `max_tokens`
word pieces, prefer to end at a paragraph break, and overlap by `overlap` sentences.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from .errors import ConfigError
from .schema import Passage

TokenCounter = Callable[[str], int]
SEGMENT_CHARS = 2000  # the most text the sentence segmenter is given at once (news paragraphs are shorter)
# pysbd finds numbered list items with a regex whose \s takes the ASCII separators \x1c-\x1f, which
# int() then refuses ("\x1f0. " raised ValueError): the segmenter reads them as spaces.
_SEPARATORS_AS_SPACES = str.maketrans("\x1c\x1d\x1e\x1f", "    ")
RUN_PIECE_CHARS = 100  # ... when the text has a run of "!" and "?" as long as _PUNCTUATION_RUN
_PUNCTUATION_RUN = re.compile(r"[!?]{20}")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
_WORD = re.compile(r"\S+")


def estimate_tokens(text: str) -> int:
    """A cautious stand-in for a tokenizer: about 1.6 word pieces a word in English news."""
    return int(len(text.split()) * 1.6) + 1


@dataclass(frozen=True)
class Span:
    """A piece of the body: `body[start:end]`, in paragraph `paragraph`."""

    start: int
    end: int
    paragraph: int
    words: int
    tokens: int


class Splitter:
    """Splits bodies into `Passage`s; cheap to build, the segmenter loads on first use.

    Args:
        words: target passage length in words. Defaults to 120.
        overlap: sentences repeated at the start of the next passage. Defaults to 0.
        max_tokens: hard limit in word pieces, special tokens included. Defaults to 256.
        count_tokens: the model's tokenizer as a counter; a word-based estimate by default.
        whole: keep each body as one passage, as given (for evaluation sets that are pre-split).
    """

    def __init__(
        self,
        words: int = 120,
        overlap: int = 0,
        max_tokens: int = 256,
        count_tokens: TokenCounter = estimate_tokens,
        whole: bool = False,
    ) -> None:
        if words < 1 or max_tokens < 8:
            raise ConfigError(f"passages need words >= 1 and max_tokens >= 8 (got {words}, {max_tokens}).")
        if overlap < 0:
            raise ConfigError(f"the sentence overlap cannot be negative (got {overlap}).")
        self.words = words
        self.overlap = overlap
        self.budget = max_tokens - 2  # [CLS] and [SEP]
        self.count_tokens = count_tokens
        self.whole = whole
        self._segmenter: object | None = None

    def split(self, body: str, body_hash: str) -> list[Passage]:
        """Passages of `body`, in order; `body[p.start:p.end] == p.text` for each."""
        return [passage for passage, _ in self.split_counted(body, body_hash)]

    def split_counted(self, body: str, body_hash: str) -> list[tuple[Passage, int]]:
        """Passages of `body` with their length in word pieces, special tokens excluded.

        The length is the sum over the passage's sentences (what the budget counts); with
        `whole`, a word-based estimate. The build embeds the longest passages first with it.
        """
        if self.whole:
            start, end = len(body) - len(body.lstrip()), len(body.rstrip())
            text = body[start:end]
            return [(Passage(body_hash, 0, start, end, 0, text), estimate_tokens(text))] if end > start else []
        units = self.sentences(body)
        windows: list[tuple[int, int]] = []
        first = 0
        while first < len(units):
            last = self._window_end(units, first)
            windows.append((first, last))
            if last == len(units) - 1:
                break
            first = max(first + 1, last + 1 - self.overlap)
        return [
            (
                Passage(
                    body_hash=body_hash,
                    ordinal=ordinal,
                    start=units[a].start,
                    end=units[b].end,
                    paragraph=units[a].paragraph,
                    text=body[units[a].start : units[b].end],
                ),
                sum(unit.tokens for unit in units[a : b + 1]),
            )
            for ordinal, (a, b) in enumerate(windows)
        ]

    def _window_end(self, units: list[Span], first: int) -> int:
        """The last sentence of the window starting at `first`."""
        words, tokens, last = units[first].words, units[first].tokens, first
        while last + 1 < len(units):
            following = units[last + 1]
            if tokens + following.tokens > self.budget or words + following.words > self.words:
                break
            if following.paragraph != units[last].paragraph and words >= self.words // 2:
                break  # a paragraph break is a good place to end once the window is half full
            words, tokens, last = words + following.words, tokens + following.tokens, last + 1
        return last

    def sentences(self, body: str) -> list[Span]:
        """Sentence spans of `body`; sentences longer than the token budget are cut at words."""
        spans: list[Span] = []
        for paragraph, (start, end) in enumerate(paragraphs(body)):
            for a, b in self._segment(body, start, end):
                spans.extend(self._fit(body, a, b, paragraph))
        return spans

    def _segment(self, body: str, start: int, end: int) -> list[tuple[int, int]]:
        """Sentence spans inside body[start:end], stripped of surrounding white space.

        The segmenter's time grows with the square of the text it is given at once (it rescans the
        whole text for each abbreviation) and with the square of each run of "!" and "?", so a long
        paragraph is given to it in pieces of at most SEGMENT_CHARS (see `pieces`), and a piece with
        such a run in pieces of RUN_PIECE_CHARS: linear time for any paragraph.
        """
        found: list[tuple[int, int]] = []
        for a, b in pieces(body, start, end, SEGMENT_CHARS):
            size = RUN_PIECE_CHARS if _PUNCTUATION_RUN.search(body, a, b) else SEGMENT_CHARS
            for c, d in pieces(body, a, b, size):
                found.extend(self._segment_piece(body, c, d))
        return found

    def _segment_piece(self, body: str, start: int, end: int) -> list[tuple[int, int]]:
        if self._segmenter is None:
            import pysbd

            self._segmenter = pysbd.Segmenter(language="en", clean=False)
        text = body[start:end].translate(_SEPARATORS_AS_SPACES)  # same length: the offsets hold
        found: list[tuple[int, int]] = []
        cursor = 0
        # The segmenter's own `segment()` maps each sentence back to the text with one new regex per
        # sentence, which also flushes Python's regex cache (so pysbd's rule patterns get compiled again
        # for every paragraph): its processor gives the same sentences, found below with str.find.
        for sentence in self._segmenter.processor(text).process():  # type: ignore[attr-defined]
            piece = sentence.strip()
            if not piece:
                continue
            at = text.find(piece, cursor)
            if at < 0:  # the segmenter changed the text: keep the rest as one sentence
                break
            found.append((start + at, start + at + len(piece)))
            cursor = at + len(piece)
        rest = text[cursor:]
        if rest.strip():
            lead = len(rest) - len(rest.lstrip())
            found.append((start + cursor + lead, start + cursor + len(rest.rstrip())))
        return found

    def _fit(self, body: str, start: int, end: int, paragraph: int) -> list[Span]:
        """One sentence as spans within the token budget (cut between words when too long)."""
        text = body[start:end]
        tokens = self.count_tokens(text)
        if tokens <= self.budget:
            return [Span(start, end, paragraph, len(text.split()), tokens)]
        pieces: list[Span] = []
        piece_start: int | None = None
        piece_end = piece_words = piece_tokens = 0
        for word_start, word_end, word_tokens in self._words(text):
            if piece_start is not None and piece_tokens + word_tokens > self.budget:
                pieces.append(Span(start + piece_start, start + piece_end, paragraph, piece_words, piece_tokens))
                piece_start = None
            if piece_start is None:
                piece_start, piece_words, piece_tokens = word_start, 0, 0
            piece_end = word_end
            piece_words += 1
            piece_tokens += word_tokens
        if piece_start is not None:
            pieces.append(Span(start + piece_start, start + piece_end, paragraph, piece_words, piece_tokens))
        return pieces

    def _words(self, text: str) -> Iterator[tuple[int, int, int]]:
        """(start, end, tokens) of each word; a word over the budget is cut every `budget` characters."""
        for match in _WORD.finditer(text):
            tokens = self.count_tokens(match.group())
            if tokens <= self.budget:
                yield match.start(), match.end(), tokens
                continue
            for at in range(match.start(), match.end(), self.budget):
                end = min(at + self.budget, match.end())
                yield at, end, self.count_tokens(text[at:end])


def paragraphs(body: str) -> list[tuple[int, int]]:
    """Paragraph spans: blocks between blank lines, or single lines when there are no blank lines."""
    breaker = _BLANK_LINE if _BLANK_LINE.search(body.strip()) else re.compile(r"\n")
    spans: list[tuple[int, int]] = []
    start = 0
    for match in breaker.finditer(body):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(body)))
    return [(a, b) for a, b in spans if body[a:b].strip()]


def pieces(text: str, start: int, end: int, limit: int) -> Iterator[tuple[int, int]]:
    """Spans of text[start:end] of at most `limit` characters, in order, covering it.

    A span ends after the last sentence end (". ", "? ", "! ") in its second half, else at its last
    white space, else at the limit. Time linear in end - start.
    """
    while end - start > limit:
        window = text[start : start + limit]
        cut = max(window.rfind(mark) for mark in (". ", "? ", "! ")) + 1
        if cut <= limit // 2:
            cut = max(window.rfind(space) for space in (" ", "\n", "\t"))
        cut = cut if cut > 0 else limit
        yield start, start + cut
        start += cut
    yield start, end
