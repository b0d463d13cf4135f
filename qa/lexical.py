"""BM25 over passages, kept in segments so that a sync writes only what it changed.

Terms are lower-cased, English stop words dropped, and stemmed (Snowball via PyStemmer, through
bm25s's tokenizer), so "interviewed" meets "interview". Each passage's terms are computed once
when it is stored.

The index stores raw term counts, not scores: a `Segment` is an immutable block of passages with
their term counts (term-major, like a CSC matrix) and lengths. The collection statistics BM25
needs (number of passages, document frequencies, average length) are computed at query time over
every live passage of every segment, so scores are exactly those of a refit over the whole index
(Lucene's BM25 as bm25s computes it, k1 = 1.5, b = 0.75), however the segments were made.

A sync adds at most one segment (its new passages) and marks deleted passages dead; small segments
are merged into larger ones as they accumulate (size-tiered: the newest segments are merged while
the next older one is at most `MERGE_RATIO` times their size, and a segment more than half dead is
compacted), so a sync writes data in proportion to what changed, amortized, and the number of
segments stays logarithmic in the index size. On disk each generation's folder `lexical-<n>/`
holds the segment it created (`.npy` without pickle, terms as JSON) and `segments.json`, the list
of segment folders that make up the index, each with its dead positions.
"""

from __future__ import annotations

import json
import math
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import numpy.typing as npt

SEGMENTS_FILE = "segments.json"
SEGMENT_FILES = ("rows.npy", "lengths.npy", "terms.json", "indptr.npy", "docs.npy", "counts.npy")
FORMAT = 2  # 1 was a bm25s matrix refitted on every sync
K1, B = 1.5, 0.75  # bm25s's defaults (Lucene's BM25)
MERGE_RATIO = 3  # merge the newest segments while the next older one holds at most 3x their passages
# bm25s's English list (33 words, Lucene's) plus the words every question is made of.
QUESTION_WORDS = (
    "who whom whose what which when where why how did does do done has have had been being was were "
    "would could should can will shall many much about there their they them"
).split()
_local = threading.local()
Rows = npt.NDArray[np.int64]


def _stemmer():  # type: ignore[no-untyped-def]
    stemmer = getattr(_local, "stemmer", None)
    if stemmer is None:
        import Stemmer

        stemmer = _local.stemmer = Stemmer.Stemmer("english")
    return stemmer


def terms(texts: list[str]) -> list[list[str]]:
    """The BM25 terms of each text: lower-cased, stop words dropped, stemmed."""
    import bm25s
    from bm25s.stopwords import STOPWORDS_EN

    if not texts:
        return []
    stopwords = [*STOPWORDS_EN, *QUESTION_WORDS]
    tokens = bm25s.tokenize(texts, stopwords=stopwords, stemmer=_stemmer(), return_ids=False, show_progress=False)
    return [list(words) for words in tokens]


@dataclass(frozen=True, eq=False)
class Segment:
    """An immutable block of passages and their term counts.

    Attributes:
        rows: (n,) int64 passage rows, strictly increasing.
        lengths: (n,) float32 terms per passage (repeats counted).
        vocabulary: the segment's terms; term `t`'s postings are `indptr[t]:indptr[t + 1]`.
        indptr: (len(vocabulary) + 1,) int64.
        docs: (postings,) int32 positions in `rows`, increasing within a term.
        counts: (postings,) float32 how often the term occurs in that passage.
        folder: the `lexical-<n>` folder the segment is saved in; None until it is saved.
    """

    rows: Rows
    lengths: npt.NDArray[np.float32]
    vocabulary: list[str]
    indptr: npt.NDArray[np.int64]
    docs: npt.NDArray[np.int32]
    counts: npt.NDArray[np.float32]
    folder: str | None = None

    @cached_property
    def term_ids(self) -> dict[str, int]:
        return {term: at for at, term in enumerate(self.vocabulary)}

    def __len__(self) -> int:
        return len(self.rows)

    @classmethod
    def build(cls, rows: Sequence[int], passage_terms: Sequence[Sequence[str]]) -> Segment:
        """Count the terms of each passage. `rows` must be strictly increasing."""
        ids: dict[str, int] = {}
        flat = np.fromiter(
            (ids.setdefault(term, len(ids)) for words in passage_terms for term in words), dtype=np.int64
        )
        lengths = np.fromiter((len(words) for words in passage_terms), dtype=np.int64, count=len(passage_terms))
        owners = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        vocabulary = list(ids)
        return cls._from_pairs(np.asarray(rows, dtype=np.int64), lengths, vocabulary, flat, owners)

    @classmethod
    def _from_pairs(
        cls, rows: Rows, lengths: npt.NDArray[np.int64], vocabulary: list[str],
        term_of: npt.NDArray[np.int64], doc_of: npt.NDArray[np.int64],
    ) -> Segment:
        """From one (term id, position) pair per occurrence, in any order."""
        if len(rows) > 1 and not bool(np.all(np.diff(rows) > 0)):
            raise ValueError("segment rows must be strictly increasing")
        width = max(len(rows), 1)
        keys, counts = np.unique(term_of * width + doc_of, return_counts=True)
        term_sorted, docs = np.divmod(keys, width)
        indptr = np.zeros(len(vocabulary) + 1, dtype=np.int64)
        np.cumsum(np.bincount(term_sorted, minlength=len(vocabulary)), out=indptr[1:])
        return cls(
            rows=rows, lengths=lengths.astype(np.float32), vocabulary=vocabulary,
            indptr=indptr, docs=docs.astype(np.int32), counts=counts.astype(np.float32),
        )

    @classmethod
    def merge(cls, parts: Sequence[tuple[Segment, npt.NDArray[np.bool_] | None]]) -> Segment:
        """One segment of the live passages of `parts` ((segment, dead mask or None), oldest first)."""
        vocabulary = sorted({term for segment, _ in parts for term in segment.vocabulary})
        index = {term: at for at, term in enumerate(vocabulary)}
        rows, lengths, term_of, doc_of = [], [], [], []
        offset = 0
        for segment, dead in parts:
            live = np.ones(len(segment), dtype=bool) if dead is None else ~dead
            position = np.cumsum(live) - 1 + offset  # new position of each live passage
            mapping = np.fromiter((index[term] for term in segment.vocabulary), dtype=np.int64,
                                  count=len(segment.vocabulary))
            terms_of_postings = np.repeat(mapping, np.diff(segment.indptr))
            keep = live[segment.docs]
            counts = segment.counts[keep].astype(np.int64)
            term_of.append(np.repeat(terms_of_postings[keep], counts))
            doc_of.append(np.repeat(position[segment.docs[keep]], counts))
            rows.append(segment.rows[live])
            lengths.append(segment.lengths[live].astype(np.int64))
            offset += int(live.sum())
        return cls._from_pairs(
            np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64),
            np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64),
            vocabulary,
            np.concatenate(term_of) if term_of else np.zeros(0, dtype=np.int64),
            np.concatenate(doc_of) if doc_of else np.zeros(0, dtype=np.int64),
        )

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        arrays = {"rows": self.rows, "lengths": self.lengths, "indptr": self.indptr, "docs": self.docs,
                  "counts": self.counts}
        for name, values in arrays.items():
            np.save(folder / f"{name}.npy", values, allow_pickle=False)
        (folder / "terms.json").write_text(json.dumps(self.vocabulary, ensure_ascii=False), encoding="utf-8")

    @classmethod
    def load(cls, folder: Path) -> Segment:
        """Raises OSError or ValueError when the files are missing or inconsistent."""
        arrays = {name: np.load(folder / f"{name}.npy", allow_pickle=False)
                  for name in ("rows", "lengths", "indptr", "docs", "counts")}
        vocabulary = json.loads((folder / "terms.json").read_text(encoding="utf-8"))
        segment = cls(
            rows=arrays["rows"].astype(np.int64, copy=False), lengths=arrays["lengths"].astype(np.float32, copy=False),
            vocabulary=vocabulary, indptr=arrays["indptr"].astype(np.int64, copy=False),
            docs=arrays["docs"].astype(np.int32, copy=False), counts=arrays["counts"].astype(np.float32, copy=False),
            folder=folder.name,
        )
        postings = len(segment.docs)
        if (
            not isinstance(vocabulary, list) or len(segment.indptr) != len(vocabulary) + 1
            or len(segment.lengths) != len(segment.rows) or len(segment.counts) != postings
            or (len(segment.indptr) and int(segment.indptr[-1]) != postings)
            or (postings and int(segment.docs.max()) >= len(segment.rows))
        ):
            raise ValueError(f"the segment in {folder.name} is inconsistent")
        return segment


@dataclass(frozen=True)
class Part:
    """A segment as the index uses it: with the positions of its passages deleted since it was written."""

    segment: Segment
    dead: frozenset[int] = field(default_factory=frozenset)

    @cached_property
    def dead_mask(self) -> npt.NDArray[np.bool_] | None:
        if not self.dead:
            return None
        mask = np.zeros(len(self.segment), dtype=bool)
        mask[np.fromiter(self.dead, dtype=np.int64, count=len(self.dead))] = True
        return mask

    @property
    def live(self) -> int:
        return len(self.segment) - len(self.dead)


class LexicalIndex:
    """BM25 over the live passages of a list of segments (oldest first). Immutable: updates return a new one.

    Args:
        parts: the segments, each with its dead positions.
    """

    def __init__(self, parts: Sequence[Part] = ()) -> None:
        self.parts = tuple(parts)
        self._offsets = np.cumsum([0] + [len(part.segment) for part in self.parts])
        self._count = sum(part.live for part in self.parts)
        total_length = sum(
            float(part.segment.lengths.sum(dtype=np.float64))
            - (float(part.segment.lengths[part.dead_mask].sum(dtype=np.float64)) if part.dead else 0.0)
            for part in self.parts
        )
        self.average_length = total_length / self._count if self._count else 0.0
        # k1 * (1 - b + b * length / average length) of every position, as in bm25s (float32).
        self._norms = [
            (K1 * ((1 - B) + B * part.segment.lengths / np.float32(self.average_length or 1.0))).astype(np.float32)
            for part in self.parts
        ]

    @classmethod
    def build(cls, rows: Sequence[int], passage_terms: Sequence[Sequence[str]]) -> LexicalIndex:
        """One unsaved segment of these passages; `rows` in increasing order."""
        if not len(rows):
            return cls()
        return cls([Part(Segment.build(rows, passage_terms))])

    def __len__(self) -> int:
        """Live passages."""
        return self._count

    @property
    def rows(self) -> Rows:
        """(n,) int64 rows of the live passages, in increasing order."""
        live = [part.segment.rows if part.dead_mask is None else part.segment.rows[~part.dead_mask]
                for part in self.parts]
        return np.concatenate(live) if live else np.zeros(0, dtype=np.int64)

    @property
    def folders(self) -> list[str]:
        """The folders of the saved segments."""
        return [part.segment.folder for part in self.parts if part.segment.folder]

    # -- updates ----------------------------------------------------------------------------

    def updated(
        self, removed: Sequence[int], rows: Sequence[int], passage_terms: Sequence[Sequence[str]]
    ) -> LexicalIndex:
        """This index without the passage rows `removed`, with the new passages added (rows above all
        live ones), and its newest segments merged as `MERGE_RATIO` and dead shares ask."""
        gone = np.unique(np.asarray(removed, dtype=np.int64))
        parts: list[Part] = []
        for part in self.parts:
            positions = _positions(part.segment.rows, gone)
            fresh = {int(at) for at in positions} - part.dead
            parts.append(Part(part.segment, part.dead | fresh) if fresh else part)
        if len(rows):
            parts.append(Part(Segment.build(rows, passage_terms)))
        parts = [part for part in parts if part.live]
        return LexicalIndex(_compact(parts))

    def saved_as(self, folder: str) -> LexicalIndex:
        """The same index, its unsaved segment (at most one) named as saved in `folder`."""
        return LexicalIndex([
            Part(replace(part.segment, folder=folder), part.dead) if part.segment.folder is None else part
            for part in self.parts
        ])

    def save(self, folder: Path) -> None:
        """Write the unsaved segment (if any) and `segments.json` into `folder`, under the name `folder.name`
        (or the name before `.tmp`): the saved segments are referenced, not written again."""
        name = folder.name.removesuffix(".tmp")
        unsaved = [part for part in self.parts if part.segment.folder is None]
        if len(unsaved) > 1:
            raise ValueError("internal: an index can gain one segment per save")
        folder.mkdir(parents=True, exist_ok=True)
        for part in unsaved:
            part.segment.save(folder)
        listing = {
            "format": FORMAT, "k1": K1, "b": B,
            "segments": [
                {"folder": part.segment.folder or name, "passages": len(part.segment), "dead": sorted(part.dead)}
                for part in self.parts
            ],
        }
        (folder / SEGMENTS_FILE).write_text(json.dumps(listing) + "\n", encoding="utf-8")

    @staticmethod
    def segment_folders(folder: Path) -> list[str]:
        """The segment folders `folder/segments.json` lists. Raises OSError, ValueError or KeyError."""
        listing = json.loads((folder / SEGMENTS_FILE).read_text(encoding="utf-8"))
        if listing.get("format") != FORMAT:
            raise ValueError(f"it is in format {listing.get('format')} (this version reads {FORMAT})")
        return [str(entry["folder"]) for entry in listing["segments"]]

    @classmethod
    def load(cls, folder: Path, known: Mapping[str, Segment] | None = None) -> LexicalIndex:
        """The index `folder/segments.json` describes; the segments in `known` (by folder) are used, not read.

        Raises OSError, ValueError or KeyError when a file is missing or damaged.
        """
        listing = json.loads((folder / SEGMENTS_FILE).read_text(encoding="utf-8"))
        if listing.get("format") != FORMAT:
            raise ValueError(f"it is in format {listing.get('format')} (this version reads {FORMAT})")
        known = known or {}
        parts = []
        for entry in listing["segments"]:
            name = str(entry["folder"])
            segment = known.get(name)
            if segment is None:
                segment = Segment.load(folder.parent / name)
            dead = frozenset(int(at) for at in entry["dead"])
            if len(segment) != int(entry["passages"]) or any(not 0 <= at < len(segment) for at in dead):
                raise ValueError(f"the segment {name} does not match {SEGMENTS_FILE}")
            parts.append(Part(segment, dead))
        return cls(parts)

    # -- search -----------------------------------------------------------------------------

    def search(self, query: str, k: int, allowed: set[int] | None = None) -> list[tuple[int, float]]:
        """(row, BM25 score) of the best `k` passages with a positive score, best first.

        `allowed` restricts the search to those passage rows (applied before ranking).
        """
        if not self._count or k <= 0:
            return []
        wanted = Counter(terms([query])[0])  # a repeated query term counts again, as in bm25s
        scores = self.scores(wanted)
        if scores is None:
            return []
        candidates = np.flatnonzero(scores > 0)  # the passages holding a query term: usually few
        rows = self._rows_by_position[candidates]
        if allowed is not None:
            keep = np.isin(rows, np.fromiter(allowed, dtype=np.int64, count=len(allowed)))
            candidates, rows = candidates[keep], rows[keep]
        found = scores[candidates]
        if len(found) > k:  # the k best and every passage tied with the k-th, then ordered
            keep = found >= np.partition(found, len(found) - k)[len(found) - k]
            found, rows = found[keep], rows[keep]
        order = np.lexsort((rows, -found))[:k]  # by score, equal scores by row: the same order every time
        return list(zip(rows[order].tolist(), found[order].tolist(), strict=True))

    def scores(self, wanted: Counter[str]) -> npt.NDArray[np.float32] | None:
        """(positions,) float32 BM25 scores of every position (dead ones 0) for the query terms `wanted`
        (term -> times asked); None when no term is in the index."""
        found: list[tuple[int, str, int, npt.NDArray[np.int32], npt.NDArray[np.float32]]] = []
        frequency: Counter[str] = Counter()
        for at, part in enumerate(self.parts):
            segment = part.segment
            for term in wanted:
                term_id = segment.term_ids.get(term)
                if term_id is None:
                    continue
                start, end = segment.indptr[term_id], segment.indptr[term_id + 1]
                docs, counts = segment.docs[start:end], segment.counts[start:end]
                if part.dead_mask is not None:
                    keep = ~part.dead_mask[docs]
                    docs, counts = docs[keep], counts[keep]
                if len(docs):
                    found.append((at, term, wanted[term], docs, counts))
                    frequency[term] += len(docs)
        if not found:
            return None
        scores = np.zeros(int(self._offsets[-1]), dtype=np.float32)
        idf = {term: np.float32(math.log(1 + (self._count - df + 0.5) / (df + 0.5))) for term, df in frequency.items()}
        for at, term, times, docs, counts in found:
            weight = idf[term] * np.float32(times) if times > 1 else idf[term]
            scores[self._offsets[at] + docs] += weight * (counts / (self._norms[at][docs] + counts))
        return scores

    @cached_property
    def _rows_by_position(self) -> Rows:
        """(positions,) the passage row at each position of every segment, dead ones included."""
        return np.concatenate([part.segment.rows for part in self.parts])


def _positions(rows: Rows, wanted: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Positions in the increasing `rows` of the values of `wanted` that it holds."""
    if not len(rows) or not len(wanted):
        return np.zeros(0, dtype=np.int64)
    at = np.searchsorted(rows, wanted)
    inside = at < len(rows)
    at = at[inside]
    return at[rows[at] == wanted[inside]]


def _compact(parts: list[Part]) -> list[Part]:
    """Merge the newest segments into one where the size-tiered policy or a dead share asks for it.

    Only the unsaved newest segment, and segments merged with it, are written by the next save.
    """
    if not parts:
        return parts
    unsaved = [at for at, part in enumerate(parts) if part.segment.folder is None]
    halves = [at for at, part in enumerate(parts) if len(part.dead) * 2 > len(part.segment)]  # rewrite those
    first = min(unsaved + halves, default=len(parts))
    if first == len(parts):
        return parts
    merged = sum(part.live for part in parts[first:])
    while first > 0 and parts[first - 1].live <= MERGE_RATIO * merged:
        first -= 1
        merged += parts[first].live
    if first == len(parts) - 1 and not parts[-1].dead:
        return parts
    joined = Segment.merge([(part.segment, part.dead_mask) for part in parts[first:]])
    return [*parts[:first], Part(joined)]
