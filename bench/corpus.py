"""Real BBC articles and large synthetic indexes for the speed benchmarks (`bench.throughput`, ...).

A synthetic index is made of real passages: a few BBC articles are indexed for real (split and
embedded by the pipeline), then `fill` writes N passages sampled from them into an articles
folder (`synthetic/part-NNNN.jsonl`, one article of 2-6 passages a line) and inserts them straight
into the index with `Store.apply`, each with its source passage's vector plus Gaussian noise, re-normalized
(cosine about 0.7 to the source: a spread like that of distinct passages). A following
`Library.sync()` sees every synthetic article as unchanged, so the index behaves as if it had
been built from that folder, without embedding it.
"""

from __future__ import annotations

import json
import resource
import statistics
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from qa import Library, Settings
from qa.articles import load_file
from qa.embed import Embedder
from qa.hashing import digest
from qa.lexical import terms
from qa.schema import Passage
from qa.store import Change, Store

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


def real_base(library: Library) -> Base:
    """The passages, titles and vectors of an index `library` has built."""
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
    return Base(texts, titles, vectors, terms(texts), terms(titles), manifest)


def build_base(corpus: Path, scratch: Path, articles: int, embedder: Embedder) -> Base:
    """Index the first `articles` BBC articles of `corpus` for real under `scratch/base-*` and take their passages."""
    folder = scratch / "base-articles"
    copy_articles(bbc_files(corpus, articles), folder)
    library = Library(settings_for(folder, scratch / "base-index"), embedder=embedder)
    library.sync()
    base = real_base(library)
    library.store.close()
    return base


def fill(library: Library, passages: int, base: Base, seed: int = 0, chunk: int = 200_000) -> int:
    """Write `synthetic/*.jsonl` into the (empty) articles folder and build the index of it from `base`.

    Returns the passages inserted. The library's settings must be those `base` was built with.
    Large sizes are inserted `chunk` passages at a time (one `Store.apply` each, the first a reset),
    so memory stays that of one chunk; the FAISS index is written exact ("flat") while filling, and
    the library's first `sync()` rebuilds it in the layout its settings ask for, from the stored
    vectors (as after a change of QA_FAISS_INDEX).
    """
    rng = np.random.default_rng(seed)
    bodies: set[str] = set()
    folder = library.settings.articles_dir / SYNTHETIC_FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    writer = Store(library.settings.index_dir, "flat")
    total = articles = 0
    while total < passages:
        picks: list[list[int]] = []
        lines: list[str] = []
        wanted = min(passages, total + chunk)
        while total < wanted:
            pick = rng.integers(0, len(base.texts), size=min(int(rng.integers(2, 7)), wanted - total)).tolist()
            body = "\n\n".join(base.texts[at] for at in pick)
            if body in bodies:
                continue  # an article body is indexed once however many files hold it
            bodies.add(body)
            number = articles + len(picks)
            lines.append(json.dumps({"id": f"s{number}", "title": base.titles[number % len(base.titles)],
                                     "text": body}) + "\n")
            picks.append(pick)
            total += len(pick)
        _insert_chunk(writer, folder, articles, picks, lines, base, rng, reset=articles == 0)
        articles += len(picks)
    writer.close()
    return total


def _insert_chunk(store: Store, folder: Path, first: int, picks: list[list[int]], lines: list[str], base: Base,
                  rng: np.random.Generator, reset: bool) -> None:
    """Write articles `first`.. (one line each, ARTICLES_PER_FILE a file) and insert their passages."""
    articles = []
    parts = range(first // ARTICLES_PER_FILE, (first + len(lines) - 1) // ARTICLES_PER_FILE + 1)
    for number in parts:
        start, stop = max(first, number * ARTICLES_PER_FILE), (number + 1) * ARTICLES_PER_FILE
        with (folder / f"part-{number:04d}.jsonl").open("a", encoding="utf-8") as handle:  # may span two chunks
            handle.write("".join(lines[start - first : stop - first]))
    for number in parts:
        relative = f"{SYNTHETIC_FOLDER}/part-{number:04d}.jsonl"
        found, _ = load_file(folder / f"part-{number:04d}.jsonl", relative)
        articles += [a for a in found if first <= int(a.article_id.rsplit("#s", 1)[1]) < first + len(picks)]
    change = Change(upsert_articles=articles, manifest=dict(base.manifest), reset=reset)
    sources: list[int] = []
    for offset, (article, pick) in enumerate(zip(articles, picks, strict=True)):
        number = first + offset
        change.add_bodies[article.body_hash] = article.text
        start = 0
        for ordinal, at in enumerate(pick):
            text = base.texts[at]
            start = article.text.index(text, start)
            change.new_passages.append(Passage(article.body_hash, ordinal, start, start + len(text), ordinal, text))
            change.vector_keys.append(digest(f"synthetic\x1f{number}\x1f{ordinal}"))
            change.new_terms.append(base.title_terms[number % len(base.titles)] + base.text_terms[at])
            sources.append(at)
            start += len(text)
    noisy = base.vectors[sources] + rng.normal(0.0, NOISE, (len(sources), base.vectors.shape[1])).astype(np.float32)
    change.new_vectors = (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)
    with store.writing():
        store.cache_vectors(change.vector_keys, change.new_vectors)
        store.apply(change)


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
