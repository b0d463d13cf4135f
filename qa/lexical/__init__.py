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

Modules: `tokens` (the terms of a text), `segment` (`Segment`, `Part` and the merge policy) and
`index` (`LexicalIndex`: updates, files and search).
"""

from .index import FORMAT, SEGMENT_FILES, SEGMENTS_FILE, LexicalIndex
from .segment import MERGE_RATIO, Part, Segment
from .tokens import QUESTION_WORDS, terms

__all__ = [
    "FORMAT", "MERGE_RATIO", "QUESTION_WORDS", "SEGMENTS_FILE", "SEGMENT_FILES", "LexicalIndex", "Part", "Segment",
    "terms",
]
