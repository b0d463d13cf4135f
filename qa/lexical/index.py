"""BM25 over the live passages of a list of segments: updates, saving and loading, and search."""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .segment import Counts, Part, Rows, Segment, compact
from .tokens import terms

SEGMENTS_FILE = "segments.json"
SEGMENT_FILES = ("rows.npy", "lengths.npy", "terms.json", "indptr.npy", "docs.npy", "counts.npy")
FORMAT = 2  # 1 was a bm25s matrix refitted on every sync
K1, B = 1.5, 0.75  # bm25s's defaults (Lucene's BM25)
Postings = list[tuple[int, str, npt.NDArray[np.int32], Counts]]  # (part, term, positions, counts)


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
        return LexicalIndex(compact(parts))

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
        postings = self._postings(wanted)
        if not postings:
            return []
        scores = self._scores(wanted, postings)
        floor = self._floor(scores, postings, k) if allowed is None else np.float32(0)
        candidates = np.flatnonzero(scores >= floor) if floor > 0 else np.flatnonzero(scores > 0)
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
        postings = self._postings(wanted)
        return self._scores(wanted, postings) if postings else None

    def _postings(self, wanted: Counter[str]) -> Postings:
        """(part, term, live positions in the part, counts) of each query term in each part that holds it."""
        found = []
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
                    found.append((at, term, docs, counts))
        return found

    def _scores(
        self, wanted: Counter[str], postings: Postings
    ) -> npt.NDArray[np.float32]:
        """Sum, term by term in float32, of idf * count / (norm + count) over the `postings`."""
        frequency: Counter[str] = Counter()
        for _, term, docs, _ in postings:
            frequency[term] += len(docs)
        scores = np.zeros(int(self._offsets[-1]), dtype=np.float32)
        idf = {term: np.float32(math.log(1 + (self._count - df + 0.5) / (df + 0.5))) for term, df in frequency.items()}
        for at, term, docs, counts in postings:
            times = wanted[term]
            weight = idf[term] * np.float32(times) if times > 1 else idf[term]
            part = scores[self._offsets[at] : self._offsets[at + 1]]  # a view: no offset added to every position
            share = self._norms[at][docs]
            share += counts
            np.divide(counts, share, out=share)
            share *= weight
            part[docs] += share
        return scores

    def _floor(self, scores: npt.NDArray[np.float32], postings: Postings, k: int) -> np.float32:
        """A score the k-th best passage reaches: the k-th best among the passages of the rarest query terms
        (at least k of them), a cheap bound that leaves few candidates. Above 0, or 0 for fewer than k."""
        sample: list[npt.NDArray[np.int64]] = []
        held = 0
        for at, _, docs, _ in sorted(postings, key=lambda entry: len(entry[2])):
            sample.append(docs.astype(np.int64) + self._offsets[at])
            held += len(docs)
            if held >= 4 * k:  # several terms' passages may be the same ones
                positions = np.unique(np.concatenate(sample))
                if len(positions) >= k:
                    return np.float32(np.partition(scores[positions], len(positions) - k)[len(positions) - k])
        return np.float32(0)

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
