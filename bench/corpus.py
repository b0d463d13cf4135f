"""Real BBC articles and large synthetic indexes for the speed benchmarks (`bench.throughput`, ...).

A synthetic index is made of real passages: a few BBC articles are indexed for real (split and
embedded by the pipeline), then `fill` writes N passages sampled from them into an articles
folder (`synthetic/part-NNNN.jsonl`, one article of 2-6 passages a line, no two with the same
body) and writes the index of that folder straight into the index folder, in bulk: each passage
with its source passage's vector plus Gaussian noise, re-normalized (cosine about 0.7 to the
source: a spread like that of distinct passages), and its real text and terms for BM25. A
following `Library.sync()` sees every synthetic article as unchanged, so the index behaves as if
it had been built from that folder, without embedding it. For a library that keeps sentence vectors,
each synthetic passage gets its source passage's; `synthetic_library` keeps none (the second search
stage is measured on real articles by `qa eval`).
"""

from __future__ import annotations

import json
import resource
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from qa import Library, Settings
from qa.articles import load_file
from qa.embed import Embedder
from qa.hashing import digest
from qa.lexical import LexicalIndex, Part, Segment, terms
from qa.lexical.segment import compact_counts
from qa.sentences import PassageSentences, PassageText, SentenceVectors
from qa.store import FORMAT_VERSION, Store, build_faiss, choose_layout
from qa.store.faiss_files import feasible_layout, write_faiss

from .bbc import bbc_files as all_bbc_files

QUESTIONS = Path(__file__).resolve().parent / "data" / "bbc-paraphrase" / "tune.jsonl"
SYNTHETIC_FOLDER = "synthetic"
ARTICLES_PER_FILE = 2000  # about 6 MB a file: under the reader's 20 MiB limit
NOISE = 0.05  # per-dimension standard deviation: |noise| is about 1 in 384 dimensions


def bbc_files(corpus: Path, count: int, skip: int = 0) -> list[Path]:
    """BBC article files `skip` .. `skip + count` in sorted path order (business/001.txt first)."""
    return all_bbc_files(corpus)[skip : skip + count]


def copy_articles(files: list[Path], folder: Path) -> None:
    """Copy BBC files into `folder` as `<category>/<name>`."""
    for path in files:
        target = folder / path.parent.name / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())


def questions() -> list[str]:
    with QUESTIONS.open(encoding="utf-8") as handle:
        return [json.loads(line)["question"] for line in handle if line.strip()]


def settings_for(articles_dir: Path, index_dir: Path) -> Settings:
    return replace(Settings(), articles_dir=articles_dir, index_dir=index_dir)


@dataclass(frozen=True)
class Base:
    """Real passages to sample from: texts, article titles, (n, d) float32 vectors, BM25 terms, and the
    manifest values (model, dimension, settings) of the index they come from."""

    texts: list[str]
    titles: list[str]
    vectors: npt.NDArray[np.float32]
    text_terms: list[list[str]]
    title_terms: list[list[str]]
    manifest: dict[str, object]
    sentences: list[PassageSentences]  # of each text, with its title (empty when the library keeps none)


def real_base(library: Library, sentences: bool = False) -> Base:
    """The passages, titles and vectors of an index `library` has built (and their sentence vectors)."""
    db = library.store.db
    rows = db.execute(
        "SELECT p.row, p.text, MIN(a.title) FROM passages p JOIN articles a ON a.body_hash = p.body_hash "
        "GROUP BY p.row ORDER BY p.row"
    ).fetchall()
    found = library.store.vectors(row for row, _, _ in rows)
    texts = [text for _, text, _ in rows]
    titles = sorted({title for _, _, title in rows})
    vectors = np.vstack([found[row] for row, _, _ in rows]).astype(np.float32)
    stored = library.store.manifest()
    manifest = {key: stored[key] for key in ("model", "dimension", "shape", "built_at")}
    kept = library.sentences if sentences else None
    found = kept.get([PassageText(title, text, "base") for _, text, title in rows]) if kept else []
    return Base(texts, titles, vectors, terms(texts), terms(titles), manifest, found)


def build_base(corpus: Path, scratch: Path, articles: int, embedder: Embedder) -> Base:
    """Index the first `articles` BBC articles of `corpus` for real under `scratch/base-*` and take their passages."""
    folder = scratch / "base-articles"
    copy_articles(bbc_files(corpus, articles), folder)
    library = Library(settings_for(folder, scratch / "base-index"), embedder=embedder)
    library.sync()
    base = real_base(library, sentences=True)
    library.store.close()
    return base


def synthetic_library(settings: Settings, embedder: Embedder) -> Library:
    """A library for a synthetic index: its syncs do not embed sentence vectors for the synthetic articles."""
    library = Library(replace(settings, rerank=False), embedder=embedder)
    library.sentences = None  # type: ignore[assignment]  # `sync` skips sentence vectors without them
    return library


def fill(library: Library, passages: int, base: Base, seed: int = 0, chunk: int = 100_000) -> int:
    """Write `synthetic/*.jsonl` into the (empty) articles folder and build the index of it from `base`.

    Returns the passages inserted. The library's settings must be those `base` was built with.
    Everything is written in bulk, straight into the index folder (one generation, as `Store.apply`
    writes it): the article files, SQLite rows and vector cache `chunk` passages at a time, one BM25
    segment counted with numpy, and the FAISS index in the layout the library's settings choose for
    this size, its vectors generated again chunk by chunk rather than held. Memory stays that of the
    FAISS index plus one chunk, and the library's first `sync()` finds the index up to date.
    """
    rng = np.random.default_rng(seed)
    sources, bounds = _draw_articles(rng, passages, base.texts)
    settings = library.settings
    store = Store(settings.index_dir, settings.faiss_index)
    with store.writing():
        body_hashes, article_ids = _write_articles(
            store, settings.articles_dir / SYNTHETIC_FOLDER, sources, bounds, base
        )
        if library.sentences is not None and base.sentences:
            _write_sentences(library.sentences, sources, bounds, article_ids, base, chunk)
        _write_passages(store, sources, bounds, body_hashes, base, seed, chunk)
        manifest = {**base.manifest, "format": FORMAT_VERSION, "generation": 1, "checksums": {}}
        lexical, checksums = store.segments.write(_lexical(sources, bounds, base), "lexical-1", {})
        del lexical
        dimension = int(base.vectors.shape[1])
        layout = feasible_layout(choose_layout(settings.faiss_index, len(sources)), dimension, len(sources))
        index, layout = build_faiss(layout, dimension, len(sources),
                                    lambda: _vector_chunks(base, sources, seed, chunk))
        checksums["vectors-1.faiss"] = write_faiss(index, settings.index_dir / "vectors-1.faiss")
        del index
        manifest.update(faiss="vectors-1.faiss", faiss_index=str(layout), lexical="lexical-1", checksums=checksums)
        with store.db:
            store.db.execute("BEGIN IMMEDIATE")
            store.catalog.set_manifest(manifest, replace=True)
    store.close()
    return len(sources)


def _draw_articles(
    rng: np.random.Generator, passages: int, texts: list[str]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Articles of 2-6 passages drawn from the base passages `texts` (the last one cut to make `passages`),
    no two with the same body: (sources, bounds), the base passage of each synthetic passage and the
    (articles + 1,) offsets of each article's passages in `sources`."""
    first_of: dict[str, int] = {}
    canonical = np.asarray([first_of.setdefault(text, at) for at, text in enumerate(texts)], dtype=np.int64)
    drawn = np.zeros((0, 6), dtype=np.int64)  # an article a row, -1 after its last passage
    while True:
        more = passages // 2 + 16
        sizes = rng.integers(2, 7, size=more)
        picks = rng.integers(0, len(texts), size=(more, 6))
        picks[np.arange(6) >= sizes[:, None]] = -1
        drawn = np.concatenate([drawn, picks])
        bodies = np.where(drawn < 0, -1, canonical[np.maximum(drawn, 0)])
        order = np.sort(np.unique(bodies, axis=0, return_index=True)[1])  # a body is indexed once
        sizes = (drawn[order] >= 0).sum(axis=1)
        ends = np.cumsum(sizes)
        if ends[-1] < passages:
            continue
        count = int(np.searchsorted(ends, passages)) + 1
        cut = passages - int(ends[count - 1] - sizes[count - 1])  # passages the last article keeps
        last = bodies[order[count - 1]].copy()
        last[cut:] = -1
        if cut == sizes[count - 1] or not (bodies[order[: count - 1]] == last).all(axis=1).any():
            break
        drawn = np.delete(drawn, order[count - 1], axis=0)  # the cut article would repeat an earlier one
    kept = drawn[order[:count]].copy()
    kept[-1, cut:] = -1
    sizes = (kept >= 0).sum(axis=1)
    return kept[kept >= 0].astype(np.int64), np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


def _write_articles(store: Store, folder: Path, sources: npt.NDArray[np.int64], bounds: npt.NDArray[np.int64],
                    base: Base) -> tuple[list[str], list[str]]:
    """Write the article files (ARTICLES_PER_FILE lines each), read them back as the build does, and
    insert their articles and bodies. Returns each article's body hash and id, in order."""
    folder.mkdir(parents=True, exist_ok=True)
    escaped = [json.dumps(text)[1:-1] for text in base.texts]
    body_hashes: list[str] = []
    article_ids: list[str] = []
    db = store.db
    for first in range(0, len(bounds) - 1, ARTICLES_PER_FILE):
        numbers = range(first, min(first + ARTICLES_PER_FILE, len(bounds) - 1))
        lines = "".join(
            f'{{"id": "s{number}", "title": {json.dumps(synthetic_title(base, number))}, "text": "'
            + "\\n\\n".join(escaped[at] for at in sources[bounds[number] : bounds[number + 1]].tolist())
            + '"}\n'
            for number in numbers
        )
        path = folder / f"part-{first // ARTICLES_PER_FILE:04d}.jsonl"
        path.write_text(lines, encoding="utf-8")
        articles, problems = load_file(path, f"{SYNTHETIC_FOLDER}/{path.name}")
        if problems or len(articles) != len(numbers):
            raise RuntimeError(f"{path} does not read back as written: {problems}")
        with db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO articles VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                ((a.article_id, a.record_hash, a.body_hash, a.title, a.source, a.url, a.date, a.author, a.publisher)
                 for a in articles),
            )
            db.executemany("INSERT INTO bodies VALUES (?, ?)", ((a.body_hash, a.text) for a in articles))
        body_hashes += [a.body_hash for a in articles]
        article_ids += [a.article_id for a in articles]
    return body_hashes, article_ids


def synthetic_title(base: Base, number: int) -> str:
    """The title of synthetic article `number`: a base title and the article's id, so that no two are alike
    (sentence vectors are kept by title and text)."""
    return f"{base.titles[number % len(base.titles)]} (s{number})"


def _id_term(number: int) -> str:
    """The BM25 term the id adds to a synthetic title."""
    return f"s{number}"


def _write_sentences(sentences: SentenceVectors, sources: npt.NDArray[np.int64], bounds: npt.NDArray[np.int64],
                     article_ids: list[str], base: Base, chunk: int) -> None:
    """Give each synthetic passage its source passage's sentence vectors, under its own article's title."""
    owners = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
    for start, stop in _chunk_ranges(len(sources), chunk):
        at = sources[start:stop].tolist()
        owner = owners[start:stop].tolist()
        sentences.store(
            [PassageText(synthetic_title(base, number), base.texts[source], article_ids[number])
             for number, source in zip(owner, at, strict=True)],
            [base.sentences[source] for source in at],
        )


def _write_passages(store: Store, sources: npt.NDArray[np.int64], bounds: npt.NDArray[np.int64],
                    body_hashes: list[str], base: Base, seed: int, chunk: int) -> None:
    """Insert the passages (row = position + 1) and their cached vectors, `chunk` at a time."""
    owners = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
    ordinals = np.arange(len(sources)) - bounds[owners]
    lengths = np.asarray([len(text) for text in base.texts], dtype=np.int64)[sources]
    joined = np.cumsum(lengths + 2) - lengths - 2  # where each passage starts in all bodies joined by blank lines
    starts = joined - joined[bounds[owners]]
    title_terms = [" ".join(words) for words in base.title_terms]
    text_terms = [" ".join(words) for words in base.text_terms]
    for rows, vectors in _vector_chunks(base, sources, seed, chunk):
        start, stop = int(rows[0]) - 1, int(rows[-1])
        at = sources[start:stop].tolist()
        owner = owners[start:stop].tolist()
        ordinal = ordinals[start:stop].tolist()
        keys = [digest(f"synthetic\x1f{number}\x1f{place}") for number, place in zip(owner, ordinal, strict=True)]
        begin = starts[start:stop].tolist()
        with store.db:
            store.db.execute("BEGIN IMMEDIATE")
            store.db.executemany(
                'INSERT INTO passages (row, body_hash, ordinal, start, "end", paragraph, text, vector_key, terms) '
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                zip(range(start + 1, stop + 1), [body_hashes[number] for number in owner], ordinal, begin,
                    (starts[start:stop] + lengths[start:stop]).tolist(), ordinal,
                    [base.texts[source] for source in at], keys,
                    [f"{title_terms[number % len(title_terms)]} {_id_term(number)} {text_terms[source]}".strip()
                     for number, source in zip(owner, at, strict=True)], strict=True),
            )
            store.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)",
                                 zip(keys, (vector.tobytes() for vector in vectors), strict=True))


def _chunk_ranges(total: int, chunk: int) -> list[tuple[int, int]]:
    return [(start, min(total, start + chunk)) for start in range(0, total, chunk)]


def _vector_chunks(base: Base, sources: npt.NDArray[np.int64], seed: int,
                   chunk: int) -> Iterator[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]]:
    """(rows, (n, d) float32 vectors) of the synthetic passages, `chunk` at a time: each its source
    vector plus Gaussian noise, re-normalized. The same on every call (one seed per chunk)."""
    for number, (start, stop) in enumerate(_chunk_ranges(len(sources), chunk)):
        rng = np.random.default_rng([seed, number])
        noisy = base.vectors[sources[start:stop]]
        noisy += NOISE * rng.standard_normal(noisy.shape, dtype=np.float32)
        noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
        yield np.arange(start + 1, stop + 1, dtype=np.int64), noisy


def _lexical(sources: npt.NDArray[np.int64], bounds: npt.NDArray[np.int64], base: Base) -> LexicalIndex:
    """One BM25 segment of every synthetic passage: its article's title terms (its id's too) and its source's terms.

    Each (title, source) pair in use is counted once; the passages' (term, count) pairs are gathered
    from those with numpy, each passage's id term added, and sorted term-major, then by position.
    """
    owners = np.repeat(np.arange(len(bounds) - 1), np.diff(bounds))
    known = {term for words in base.title_terms + base.text_terms for term in words}
    id_terms = [_id_term(number) for number in range(len(bounds) - 1)]
    if known.intersection(id_terms):
        raise RuntimeError(f"the base passages use an id term: {sorted(known.intersection(id_terms))[:5]}")
    vocabulary = sorted(known.union(id_terms))
    ids = {term: at for at, term in enumerate(vocabulary)}
    pairs, combo_of = np.unique((owners % len(base.titles)) * len(base.texts) + sources, return_inverse=True)
    counted = [Counter(base.title_terms[title] + base.text_terms[source])
               for title, source in zip(*np.divmod(pairs, len(base.texts)), strict=True)]
    terms_of = np.fromiter((ids[term] for found in counted for term in found), dtype=np.int32)
    counts_of = np.fromiter((count for found in counted for count in found.values()), dtype=np.float32)
    sizes = np.fromiter((len(found) for found in counted), dtype=np.int64, count=len(counted))
    totals = np.fromiter((found.total() for found in counted), dtype=np.float32, count=len(counted))
    starts = np.cumsum(sizes) - sizes
    sizes, starts = sizes[combo_of], starts[combo_of]  # per passage
    gather = np.arange(int(sizes.sum()), dtype=np.int64) + np.repeat(starts - (np.cumsum(sizes) - sizes), sizes)
    passages = np.arange(len(sources), dtype=np.int32)
    id_of = np.fromiter((ids[term] for term in id_terms), dtype=np.int32, count=len(id_terms))
    term_of = np.concatenate([terms_of[gather], id_of[owners]])
    counts = np.concatenate([counts_of[gather], np.ones(len(sources), dtype=np.float32)])
    del gather
    docs = np.concatenate([np.repeat(passages, sizes), passages])
    order = np.lexsort((docs, term_of))
    indptr = np.zeros(len(vocabulary) + 1, dtype=np.int64)
    np.cumsum(np.bincount(term_of, minlength=len(vocabulary)), out=indptr[1:])
    del term_of
    segment = Segment(rows=np.arange(1, len(sources) + 1, dtype=np.int64), lengths=totals[combo_of] + 1,
                      vocabulary=vocabulary, indptr=indptr, docs=docs[order], counts=compact_counts(counts[order]))
    return LexicalIndex([Part(segment)])


def percentile(values: list[float], share: float) -> float:
    """The `share` (0-1) percentile of `values`, linearly interpolated."""
    return float(np.percentile(np.asarray(values), share * 100))


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def write_json(path: Path | None, figures: object) -> None:
    """Write a benchmark's figures to `path` (its folder created), when one was given."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(figures, indent=2) + "\n")
