"""The BM25 index's files in the index folder: `lexical-<generation>/` folders of segments (see `qa.lexical`).

A generation's folder holds the segment of the passages it added and `segments.json`, the list of
the segment folders the whole BM25 index is made of; older generations' folders stay while a later
list names them. Segments this process has read or written (same folder, same checksums) are kept
in memory and not read again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from ..lexical import LexicalIndex, Segment
from .folder import checksum_problem, signature, synced_digest

READ_ERRORS = (OSError, ValueError, KeyError, TypeError, EOFError)  # what a damaged segment file raises


class SegmentFiles:
    """Reads and writes the BM25 folders of one index folder."""

    def __init__(self, index_dir: Path) -> None:
        self.index_dir = index_dir
        self._known: dict[tuple[str, str], Segment] = {}  # segments read or written, by (folder, checksums)

    def read(self, manifest: dict[str, Any], total: int) -> tuple[LexicalIndex | None, str | None]:
        """The BM25 index the manifest names, or (None, what is wrong with it) when it is unusable
        (a file fails its checksum, cannot be read, or the index does not hold `total` passages)."""
        folder = self.index_dir / str(manifest.get("lexical", ""))
        problem = checksum_problem(self.index_dir, manifest, folder.name)
        if problem is None:
            try:
                known: dict[str, Segment] = {}
                for name in LexicalIndex.segment_folders(folder):
                    segment = self._known.get((name, signature(manifest, name)))
                    if segment is not None:
                        known[name] = segment
                    elif name != folder.name and (problem := checksum_problem(self.index_dir, manifest, name)):
                        break
                if problem is None:
                    lexical = LexicalIndex.load(folder, known)
                    if len(lexical) == total:
                        self.remember(lexical, manifest.get("checksums") or {})
                        return lexical, None
                    problem = f"it holds {len(lexical)} passages of {total}"
            except READ_ERRORS as error:
                problem = str(error).splitlines()[0] if str(error) else type(error).__name__
        return None, problem

    def write(self, lexical: LexicalIndex, name: str, kept: dict[str, str]) -> tuple[LexicalIndex, dict[str, str]]:
        """Write the new BM25 segment and the segment list to `name.tmp`, then rename: the folder is whole or
        absent. The saved segments it lists are not written again; their checksums are taken from `kept` (the
        previous manifest's). Returns the index as saved and "folder/file" -> SHA-256 of every file it uses."""
        folder = self.index_dir / name
        temporary = folder.with_name(folder.name + ".tmp")
        shutil.rmtree(temporary, ignore_errors=True)
        lexical.save(temporary)
        checksums = {f"{folder.name}/{path.name}": synced_digest(path) for path in sorted(temporary.iterdir())}
        shutil.rmtree(folder, ignore_errors=True)  # a leftover of a killed build: never the current generation
        os.replace(temporary, folder)
        saved = lexical.saved_as(folder.name)
        for other in saved.folders:
            if other != folder.name:
                checksums.update((key, value) for key, value in kept.items() if key.startswith(other + "/"))
        return saved, checksums

    def remember(self, lexical: LexicalIndex, checksums: dict[str, str]) -> None:
        """Keep the saved segments of `lexical` for the next read (and forget older ones)."""
        manifest = {"checksums": checksums}
        self._known = {
            (part.segment.folder, signature(manifest, part.segment.folder)): part.segment
            for part in lexical.parts if part.segment.folder
        }
