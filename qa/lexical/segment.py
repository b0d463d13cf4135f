"""The blocks a `LexicalIndex` is made of: immutable segments of term counts, and the merge policy.

A `Segment` holds its passages' term counts term-major (like a CSC matrix) and is saved as plain
`.npy` files (no pickle) and its vocabulary as JSON. A `Part` is a segment with the positions of
its passages deleted since it was written. `compact` merges the newest segments size-tiered.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import numpy.typing as npt

MERGE_RATIO = 3  # merge the newest segments while the next older one holds at most 3x their passages
Rows = npt.NDArray[np.int64]
Counts = npt.NDArray[np.uint16] | npt.NDArray[np.float32]
COUNT_LIMIT = np.iinfo(np.uint16).max


@dataclass(frozen=True, eq=False)
class Segment:
    """An immutable block of passages and their term counts.

    Attributes:
        rows: (n,) int64 passage rows, strictly increasing.
        lengths: (n,) float32 terms per passage (repeats counted).
        vocabulary: the segment's terms; term `t`'s postings are `indptr[t]:indptr[t + 1]`.
        indptr: (len(vocabulary) + 1,) int64.
        docs: (postings,) int32 positions in `rows`, increasing within a term.
        counts: (postings,) how often the term occurs in that passage: uint16 (2 bytes a posting), or float32
            when a count passes 65,535.
        folder: the `lexical-<n>` folder the segment is saved in; None until it is saved.
    """

    rows: Rows
    lengths: npt.NDArray[np.float32]
    vocabulary: list[str]
    indptr: npt.NDArray[np.int64]
    docs: npt.NDArray[np.int32]
    counts: Counts
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
            indptr=indptr, docs=docs.astype(np.int32), counts=compact_counts(counts),
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
            docs=arrays["docs"].astype(np.int32, copy=False), counts=compact_counts(arrays["counts"]),
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


def compact(parts: list[Part]) -> list[Part]:
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


def compact_counts(counts: npt.NDArray[np.generic]) -> Counts:
    """Term counts as uint16 when every one is a whole number up to 65,535 (exact, half of float32's
    memory; BM25 divides them in float32 all the same), else as float32."""
    if counts.dtype == np.uint16:
        return counts  # type: ignore[return-value]
    if not len(counts) or (float(counts.max()) <= COUNT_LIMIT and bool(np.all(counts == np.floor(counts)))
                           and float(counts.min()) >= 0):
        return counts.astype(np.uint16)
    return counts.astype(np.float32, copy=False)
