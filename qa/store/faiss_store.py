"""The default index store: FAISS and BM25 files beside an SQLite catalog, in one folder.

Layout of the index folder:
- `index.sqlite`: the catalog (see `qa.store.catalog`), and the manifest, which names the current
  generation's files and keeps their SHA-256 checksums.
- `vectors-<generation>.faiss` and `vectors-<generation>.delta.npz`: the passage vectors, a base file
  and what the syncs since it changed (see `qa.store.faiss_files` and `qa.store.faiss_deltas`).
- `lexical-<generation>/`: BM25 segments (see `qa.store.segments`).
- `.lock`: held by the one process that writes.

A write never touches the files a reader uses: the new files are written under a new generation
name, then one SQLite transaction switches the manifest to them. A process killed at any moment
leaves either the old or the new index, and the vector cache keeps what was already embedded so the
next build resumes without re-embedding it (a sync drops the cached vectors of the passages it
deleted; a full build drops every unused one). A damaged or swapped file is noticed when it is loaded
and rebuilt from what SQLite holds (vectors, terms) instead of being served.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sqlite3
import threading
import time
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import StoreError
from ..lexical import LexicalIndex
from ..schema import Citation
from . import integrity
from .catalog import DATABASE, Catalog
from .contract import (
    FORMAT_VERSION,
    Change,
    Exportable,
    IndexStore,
    Maintainable,
    StoredPassage,
    Vectors,
    mean_directions,
)
from .faiss_builds import FaissBuilder, kept_checksums
from .faiss_deltas import (
    MERGE_SHARE,
    Delta,
    apply_delta,
    combined,
    delta_entries,
    faiss_names,
    read_delta,
    write_delta,
)
from .faiss_files import (
    FaissLayout,
    removes_in_place,
    search_faiss,
    set_search,
    stored_vectors,
    write_faiss,
)
from .folder import checksum_problem, forget_old_files, next_generation, write_lock
from .restriction import Restriction
from .segments import SegmentFiles
from .sharing import SharedLock

if TYPE_CHECKING:
    from .faiss_files import FaissIndex

logger = logging.getLogger(__name__)


class Store(IndexStore, Maintainable, Exportable):
    """Reads and writes one index folder. Cheap to create: nothing is opened until used.

    Readers keep the FAISS index of the generation they loaded until a search sees a newer one,
    so questions asked during a sync are answered from the previous index. Implements `IndexStore`,
    `Maintainable` and `Exportable`.
    """

    def __init__(self, index_dir: Path, faiss_index: str = "auto") -> None:
        self.index_dir = Path(index_dir)
        self.catalog = Catalog(self.index_dir / DATABASE)
        self.builds = FaissBuilder(self.index_dir, self.catalog, faiss_index)
        self.segments = SegmentFiles(self.index_dir)
        self._faiss: FaissIndex | None = None
        self._faiss_files: list[str] = []  # the base and delta files `_faiss` was read from or caught up with
        self._sharing = SharedLock()  # searches share `_faiss`; applying a delta to it in place holds it alone
        self._lexical: LexicalIndex | None = None
        self._generation: int | None = None
        self._reload = threading.Lock()
        self._allowed: tuple[tuple[Restriction, int], set[int]] | None = None  # the last restriction's rows
        self.file_damage: str | None = None  # why the current FAISS or BM25 file had to be rebuilt in memory
        self._sound = False  # the database passed `inspect()` in this process

    @property
    def faiss_index_setting(self) -> str:
        """The FAISS layout asked for: "auto", "flat" or a factory string (see `choose_layout`)."""
        return self.builds.setting

    @faiss_index_setting.setter
    def faiss_index_setting(self, setting: str) -> None:
        self.builds.setting = setting

    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection to the catalog."""
        return self.catalog.db

    # -- the manifest and the write lock -----------------------------------------------------

    def exists(self) -> bool:
        return self.catalog.exists()

    def manifest(self) -> dict[str, Any]:
        return self.catalog.manifest()

    def note(self, key: str, value: Any) -> None:
        """Add one value to the manifest of the current index (e.g. its health figures)."""
        with self.db:
            self.catalog.set_manifest({key: value})

    def writing(self) -> contextlib.AbstractContextManager[None]:
        """Hold the index's write lock, or raise BusyError at once if another process holds it."""
        return write_lock(self.index_dir)

    def close(self) -> None:
        self.catalog.close()

    # -- maintenance ----------------------------------------------------------------------------

    def inspect(self) -> tuple[str, str] | None:
        """Why the index database cannot be updated in place, as (kind, reason), or None when it can.

        kind is "damaged" (SQLite's `quick_check` fails, or the file is not a database), "old"
        (another format version or table layout) or "missing" (FAISS files without a database).
        The quick check reads the whole file, so a database that passed is not read again.
        """
        if not self.exists():
            leftovers = sorted(path.name for path in self.index_dir.glob("vectors-*.faiss"))
            return ("missing", f"{self.catalog.path} is missing beside {leftovers[-1]}") if leftovers else None
        if self._sound:
            return None
        found = self.catalog.problem()
        self._sound = found is None
        return found

    def move_aside(self, kind: str) -> Path:
        """Rename the database and its WAL files to `index.sqlite.<kind>-<UTC time>`: set aside, never deleted."""
        with self._reload:
            self._faiss = self._lexical = self._generation = None
        return self.catalog.move_aside(kind)

    def damage(self) -> str | None:
        """Why the current FAISS or BM25 file cannot be used as written (it was rebuilt in memory), or None."""
        try:
            self._current()
        except StoreError as error:
            return str(error)
        return self.file_damage

    def check(self) -> list[str]:
        """Problems found in the index (empty when consistent); see `qa.store.integrity`.
        Writes nothing, and creates no index where there is none."""
        if not self.exists():
            return [f"there is no index in {self.index_dir}"]
        try:
            return integrity.problems(self.index_dir, self.catalog)
        except (StoreError, sqlite3.DatabaseError) as error:
            return [str(error)]

    def snapshot(self) -> Change:
        """The whole index as one Change (reset) that rebuilds it in another store without embedding."""
        return self.catalog.snapshot()

    # -- what the build compares and writes ---------------------------------------------------

    def article_hashes(self) -> dict[str, tuple[str, str]]:
        return self.catalog.article_hashes()

    def body_hashes(self) -> set[str]:
        return self.catalog.body_hashes()

    def passage_count(self, body_hashes: Iterable[str]) -> int:
        return self.catalog.passage_count(body_hashes)

    def cached_vectors(self, keys: Sequence[str]) -> dict[str, Vectors]:
        return self.catalog.cached_vectors(keys)

    def cache_vectors(self, keys: Sequence[str], vectors: Vectors) -> None:
        self.catalog.cache_vectors(keys, vectors)

    def apply(self, change: Change) -> None:
        """Write one sync: its FAISS delta file (or a new base file, see `qa.store.faiss_deltas`) and BM25
        segment under a new generation, then one SQLite transaction that switches to it."""
        db = self.db
        old = self.manifest()
        dimension = int(change.manifest["dimension"])
        generation = next_generation(self.index_dir, old)
        written_name = f"vectors-{generation}.faiss"
        lexical_name = f"lexical-{generation}"
        db.execute("BEGIN IMMEDIATE")
        try:
            if change.reset:
                self.catalog.clear()
            lexical = LexicalIndex() if change.reset or not old else self._lexical_before(old)
            unused = [] if change.reset else self.catalog.vector_keys(change.delete_bodies)
            removed = self.catalog.delete(change)
            rows = self.catalog.insert(change)
            total = self.catalog.passage_total()
            delta = Delta.of(removed, rows, change.new_vectors, dimension)
            layout = self.builds.delta_layout(old, change, delta, total, dimension)
            index: FaissIndex | None = None
            if layout is not None:  # what changed, beside the base: the delta file
                files, checksums = faiss_names(old), kept_checksums(old)
                entries = delta_entries(old)
                if len(delta):
                    written_name = f"vectors-{generation}.delta.npz"
                    checksums[written_name] = write_delta(delta, self.index_dir / written_name)
                    entries.append(delta.entry(written_name))
                    files.append(written_name)
                faiss = {"faiss": old["faiss"], "faiss_deltas": entries}
            else:  # a new base: the whole index, merged with its deltas
                index, layout = self.builds.merged(old, change, removed, rows, total, dimension)
                if index.ntotal != total:
                    raise StoreError(f"internal: FAISS holds {index.ntotal} vectors but SQLite {total} passages")
                files, checksums = [written_name], {written_name: write_faiss(index, self.index_dir / written_name)}
                faiss = {"faiss": written_name, "faiss_deltas": []}
            lexical = lexical.updated(removed, rows, change.new_terms)
            if len(lexical) != total:
                raise StoreError(f"internal: BM25 holds {len(lexical)} passages but SQLite {total}")
            lexical, written = self.segments.write(lexical, lexical_name, old.get("checksums") or {})
            checksums.update(written)
            manifest = {
                **change.manifest, "format": FORMAT_VERSION, "generation": generation, **faiss,
                "faiss_index": str(layout), "lexical": lexical_name, "checksums": checksums,
            }
            self.catalog.set_manifest(manifest, replace=True)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            (self.index_dir / written_name).unlink(missing_ok=True)
            shutil.rmtree(self.index_dir / lexical_name, ignore_errors=True)
            raise
        self.segments.remember(lexical, checksums)
        with self._reload:  # what was just written and checksummed: readers here need not read it back
            if index is None:
                index = self._caught_up(manifest, {written_name: delta} if len(delta) else {})
            self._faiss, self._faiss_files = index, files
            self._lexical, self._generation, self.file_damage = lexical, generation, None  # (FAISS read if None)
        forget_old_files(self.index_dir, *files, lexical_name, *lexical.folders)
        self.catalog.prune_vectors(unused, everything=change.reset)

    def refit_faiss(self) -> bool:
        """Rebuild the FAISS index from the vector cache when the setting asks for another layout than
        the current one (e.g. QA_FAISS_INDEX changed): nothing is embedded, the BM25 files are kept.

        Writes a new generation; call it with the write lock held. Returns whether anything changed.
        """
        manifest = self.manifest()
        if not manifest or "faiss" not in manifest:
            return False
        total = self.catalog.passage_total()
        dimension = int(manifest["dimension"])
        held = FaissLayout.parse(manifest.get("faiss_index", "Flat"))
        layout = self.builds.layout(total, dimension)
        if layout == held:
            return False
        started = time.perf_counter()
        if layout.factory == held.factory:
            index = self._read_faiss(manifest)
            set_search(index, layout)
        else:
            index, layout = self.builds.from_cache(dimension, layout)
        self._write_base(manifest, index, layout)
        logger.info("FAISS index %s -> %s in %.1f s (%d passages)", held, layout, time.perf_counter() - started, total)
        return True

    def merge_deltas(self, share: float = MERGE_SHARE) -> bool:
        """Write the FAISS base and its delta files as one new base file once the deltas hold `share` of
        the base's rows or more: a new generation whose manifest names no delta file, so that later
        syncs write small deltas again instead of merging themselves. Nothing is embedded; BM25 is kept;
        searches go on meanwhile, on the loaded index, which stays loaded.

        Call it with the write lock held (`writing()`). Returns whether it wrote a new base.
        """
        manifest = self.manifest()
        entries = delta_entries(manifest) if manifest and "faiss" in manifest else []
        changed = sum(int(entry["added"]) + int(entry["removed"]) for entry in entries)
        base = self.catalog.passage_total() - sum(int(entry["added"]) - int(entry["removed"]) for entry in entries)
        if not entries or changed < share * max(base, 1):
            return False
        started = time.perf_counter()
        index, _, generation = self._current()
        if self.file_damage or generation != int(manifest["generation"]):
            return False
        with self._sharing.shared():  # no delta is applied while it is written: syncs hold the write lock
            name = self._write_base(manifest, index, FaissLayout.parse(manifest.get("faiss_index", "Flat")))
        with self._reload:
            if self._generation == generation:
                self._faiss_files, self._generation = [name], int(self.manifest()["generation"])
        logger.info("merged %d FAISS delta files into %s in %.1f s", len(entries), name, time.perf_counter() - started)
        return True

    def _write_base(self, manifest: dict[str, Any], index: FaissIndex, layout: FaissLayout) -> str:
        """Write `index` as the base file of a new generation that names no delta, switch the manifest to
        it, and forget the files it replaces. Returns the new file's name."""
        generation = next_generation(self.index_dir, manifest)
        faiss_name = f"vectors-{generation}.faiss"
        checksum = write_faiss(index, self.index_dir / faiss_name)
        updates: dict[str, Any] = {
            "generation": generation, "faiss": faiss_name, "faiss_deltas": [], "faiss_index": str(layout),
        }
        if "checksums" in manifest:
            replaced = set(faiss_names(manifest))
            kept = {key: value for key, value in manifest["checksums"].items() if key not in replaced}
            updates["checksums"] = {faiss_name: checksum, **kept}
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.catalog.set_manifest(updates)
        lexical = str(manifest["lexical"])
        with contextlib.suppress(OSError, ValueError, KeyError):  # unreadable listing: keep every file
            segments = LexicalIndex.segment_folders(self.index_dir / lexical)
            forget_old_files(self.index_dir, faiss_name, lexical, *segments)
        return faiss_name

    # -- loading the current generation ------------------------------------------------------

    def _current(self) -> tuple[FaissIndex, LexicalIndex, int]:
        """The indexes of the current generation, reloaded when a sync has switched to a newer one."""
        manifest = self.manifest()
        if not manifest:
            raise StoreError(f"There is no index in {self.index_dir} yet; run `python -m qa index` to build it.")
        generation = int(manifest["generation"])
        with self._reload:
            if self._faiss is None or self._lexical is None or self._generation != generation:
                faiss = self._caught_up(manifest)
                if faiss is None:
                    self.file_damage = None
                    faiss = self._read_faiss(manifest)
                self._faiss, self._faiss_files = faiss, faiss_names(manifest)
                self._lexical = self._read_lexical(manifest)
                self._generation = generation
            return self._faiss, self._lexical, generation

    def _caught_up(self, manifest: dict[str, Any], known: dict[str, Delta] | None = None) -> FaissIndex | None:
        """The loaded FAISS index brought to `manifest` in place, when it was read from the same base and
        older deltas: only the new delta files are read (or taken from `known`). None when it cannot be.
        Call with `_reload` held."""
        loaded, names = self._faiss_files, faiss_names(manifest)
        index = self._faiss
        if index is None or self.file_damage or names[: len(loaded)] != loaded:
            return None
        layout = FaissLayout.parse(manifest.get("faiss_index", "Flat"))
        deltas = []
        for name in names[len(loaded) :]:
            if name in (known or {}):
                deltas.append((known or {})[name])
                continue
            if checksum_problem(self.index_dir, manifest, name):
                return None
            try:
                deltas.append(read_delta(self.index_dir / name, index.d))
            except (OSError, ValueError):
                return None
        if deltas and not removes_in_place(index):
            return None
        try:
            with self._sharing.alone():
                if deltas:
                    apply_delta(index, combined(deltas, index.d))
                set_search(index, layout)
        except ValueError:
            return None
        return index if index.ntotal == self.catalog.passage_total() else None

    def faiss_index(self) -> FaissIndex:
        return self._current()[0]

    def lexical_index(self) -> LexicalIndex:
        return self._current()[1]

    def _read_faiss(self, manifest: dict[str, Any]) -> FaissIndex:
        """The FAISS index the manifest names; rebuilt from the vector cache when it is unusable."""
        index, problem = self.builds.as_written(manifest, self.catalog.passage_total())
        if index is not None:
            return index
        path = self.index_dir / str(manifest.get("faiss", ""))
        logger.warning("the FAISS file %s is unusable (%s); rebuilding it from the stored vectors", path, problem)
        self.file_damage = f"the FAISS file {path.name} is unusable ({problem})"
        layout = FaissLayout.parse(manifest.get("faiss_index", "Flat"))
        return self.builds.from_cache(int(manifest["dimension"]), layout)[0]

    def _read_lexical(self, manifest: dict[str, Any]) -> LexicalIndex:
        """The BM25 index the manifest names; rebuilt from the stored terms when it is unusable."""
        lexical, problem = self.segments.read(manifest, self.catalog.passage_total())
        if lexical is not None:
            return lexical
        folder = self.index_dir / str(manifest.get("lexical", ""))
        logger.warning("the BM25 index %s is unusable (%s); rebuilding it from the stored terms", folder, problem)
        self.file_damage = self.file_damage or f"the BM25 index {folder.name} is unusable ({problem})"
        return LexicalIndex.build(*self.catalog.terms())

    def _lexical_before(self, manifest: dict[str, Any]) -> LexicalIndex:
        """The BM25 index of the generation `manifest` names: the loaded one when it is that one."""
        with self._reload:
            if self._lexical is not None and self._generation == int(manifest["generation"]):
                return self._lexical
        return self._read_lexical(manifest)

    # -- what the search reads -------------------------------------------------------------------

    def allowed_rows(self, restriction: Restriction | None, generation: int) -> set[int] | None:
        """The passage rows that pass `restriction` (None = all), kept for the next search of the same
        generation (a hybrid search asks twice)."""
        if restriction is None:
            return None
        key = (restriction, generation)
        cached = self._allowed  # one read: another thread may replace it meanwhile
        if cached is None or cached[0] != key:
            cached = self._allowed = key, self.catalog.rows(restriction)
        return cached[1]

    def search(self, query: Vectors, k: int, restriction: Restriction | None = None) -> list[tuple[int, float]]:
        """(row, inner product) of the `k` nearest passages that pass `restriction`, best first. `query` is (1, d).
        See `qa.store.faiss_files.search_faiss`."""
        index, _, generation = self._current()
        allowed = self.allowed_rows(restriction, generation)
        with self._sharing.shared():
            return search_faiss(index, query, k, allowed)

    def search_terms(
        self, question: str, k: int, restriction: Restriction | None = None
    ) -> list[tuple[int, float]]:
        """(row, BM25 score) of the `k` best passages by shared terms that pass `restriction`, best first."""
        _, lexical, generation = self._current()
        return lexical.search(question, k, self.allowed_rows(restriction, generation))

    def passages(self, rows: Iterable[int]) -> dict[int, StoredPassage]:
        return self.catalog.passages(rows)

    def vectors(self, rows: Iterable[int]) -> dict[int, Vectors]:
        """The stored (d,) vector of each passage row that still exists."""
        index = self.faiss_index()
        with self._sharing.shared():
            return stored_vectors(index, list(rows))

    def citations(self, body_hashes: Iterable[str]) -> dict[str, list[Citation]]:
        return self.catalog.citations(body_hashes)

    def dates(self, rows: Iterable[int]) -> dict[int, date]:
        return self.catalog.dates(rows)

    def newest_date(self) -> date | None:
        return self.catalog.newest_date()

    def article_vectors(self) -> tuple[list[str], Vectors]:
        """Every indexed article's id (sorted) and its vector, the L2-normalized mean of its passages'
        stored vectors, as (n, d) float32. Articles with one body share one vector."""
        bodies, vectors = mean_directions(self.catalog.body_vector_batches())
        at = {body: position for position, body in enumerate(bodies)}
        articles = sorted((article_id, body) for article_id, (_, body) in self.article_hashes().items() if body in at)
        return [article_id for article_id, _ in articles], vectors[[at[body] for _, body in articles]]

    # -- what the interfaces show ------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        return self.catalog.counts()

    def titles(self, article_ids: Iterable[str]) -> dict[str, str]:
        return self.catalog.titles(article_ids)

    def article_list(self) -> list[tuple[str, str, str | None]]:
        return self.catalog.article_list()
