"""A build killed (SIGKILL) at any moment leaves the old or the new index, whole, and the next sync finishes it.

One long-lived server process loads the model once and forks a fresh child for every build, so
each trial is a real process doing a real build (real model, FAISS, SQLite) that is really
SIGKILLed, without paying the model's start-up for every trial. Kills land either on a line of
the build's own code (lines sampled across the whole run: reading the folder, embedding, the
transaction that switches generations, the cleanup after it, the health note) or at a random
moment of the build's wall-clock time (inside the model, FAISS or SQLite).

Each trial swaps one article of a dozen for another. Half of the builds write that change as a FAISS
delta file beside the base, the other half merge the base and its deltas into a new base file
(`qa.store.faiss_deltas`): kills land in both kinds of write.

A merge of the FAISS deltas between syncs (`Library.merge_deltas`), killed on any line of its code
path, leaves the index as the sync left it, whole.

Quick by default (24 trials, 8 merges); `QA_LONG_TESTS=1` runs 200 and 40.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from qa import Library, Settings
from qa.embed import Embedder
from qa.store import Store, faiss_deltas

ROOT = Path(__file__).resolve().parent.parent
LONG = os.environ.get("QA_LONG_TESTS") == "1"  # read at import: the autouse fixture clears QA_* later
TRIALS = 200 if LONG else 24
MERGE_TRIALS = 40 if LONG else 8
TRACED = (  # the files whose lines can be kill points
    "build.py", "assistant.py", "lexical.py", "store/faiss_store.py", "store/catalog.py", "store/segments.py",
    "store/folder.py", "store/faiss_files.py", "store/faiss_deltas.py",
)
WAYS = {"second": ("delta", 10.0), "first": ("merge", 0.0)}  # builds towards each state, and the deltas' share

SERVER = r"""
import json, os, signal, sys, time, traceback
import torch
torch.set_num_threads(1)  # one thread: forking a process with a live thread pool is not safe
import qa.build
import qa.store.faiss_deltas
from qa import Library, Settings
from qa.embed import Embedder

qa.build.EMBED_CHUNK = 2  # more cache checkpoints in a small build: more moments worth killing
TRACED = tuple(os.path.join(os.getcwd(), "qa", name) for name in sys.argv[1].split(","))
embedder = Embedder()
# The models load and the encoder paths are chosen here, once, not in every child: passages, questions
# (the headline self-check) and answer sentences.
embedder.encode(["warm up"])
embedder.warm_up()
embedder.answers.encode_sentences(["Warm up."])
print(json.dumps({"ready": os.getpid()}), flush=True)


def build(plan):
    qa.store.faiss_deltas.DELTA_SHARE = plan["delta_share"]
    seen, order, target = {}, [], plan.get("line")
    def lines(frame, event, arg):
        if event == "line":
            where = (frame.f_code.co_filename, frame.f_lineno)
            seen[where] = seen.get(where, 0) + 1
            if seen[where] == 1:
                order.append((*where, frame.f_code.co_name))
            if target and list(where) == target[:2] and seen[where] == target[2]:
                os.kill(os.getpid(), signal.SIGKILL)
        return lines
    library = Library(Settings(plan["articles"], plan["index"], passage_words=30), embedder=embedder)
    if plan.get("merge"):  # a sync that finds nothing new, then the merge of the FAISS deltas, traced alone
        library.sync()
    sys.settrace(lambda frame, event, arg: lines if frame.f_code.co_filename in TRACED else None)
    library.merge_deltas() if plan.get("merge") else library.sync()
    sys.settrace(None)
    if plan.get("trace"):
        with open(plan["trace"], "w") as out:
            json.dump([[file, line, seen[(file, line)], function] for file, line, function in order], out)


for request in sys.stdin:
    plan = json.loads(request)
    started = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            build(plan)
            os._exit(0)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)
    delay = plan.get("delay")
    while True:
        done, status = os.waitpid(pid, 0 if delay is None else os.WNOHANG)
        if done:
            break
        if time.monotonic() - started >= delay:
            os.kill(pid, signal.SIGKILL)  # our own unreaped child: the pid cannot have been reused
            _, status = os.waitpid(pid, 0)
            break
        time.sleep(0.002)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    outcome = "killed" if killed else f"exit {os.waitstatus_to_exitcode(status)}"
    print(json.dumps({"outcome": outcome, "seconds": time.monotonic() - started}), flush=True)
"""

WORDS = (
    "minister council budget harbour storm election court river bank market farmers strike rail "
    "hospital school police league match festival museum bridge energy prices wages talks report"
).split()


class BuildServer:
    """The long-lived process that forks one build child per request."""

    def __init__(self, log: Path) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, ",".join(TRACED)], cwd=ROOT, stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=open(log, "w"), text=True,
            env={**{k: v for k, v in os.environ.items() if not k.startswith("QA_")}, "PYTHONPATH": str(ROOT),
                 "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"},
        )
        self._reply()

    def _reply(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise AssertionError("the build server died:\n" + self.log.read_text()[-3000:])
        return json.loads(line)

    def build(self, **plan: Any) -> dict[str, Any]:
        """Run one build child with `plan` (articles, index, and line, delay or trace) and say how it ended."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(plan) + "\n")
        self.process.stdin.flush()
        return self._reply()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BuildServer]:
    started = BuildServer(tmp_path / "server.log")
    yield started
    started.close()


def generated_articles(prefix: str, count: int, rng: random.Random) -> dict[str, str]:
    """`count` short articles of random news words (2-3 passages of 30 words each)."""
    found = {}
    for number in range(count):
        sentences = [
            " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + "."
            for _ in range(rng.randint(5, 8))
        ]
        found[f"{prefix}-{number:02d}.txt"] = f"Generated {prefix} report {number}\n\n" + " ".join(sentences)
    return found


def switch(folder: Path, leave: dict[str, str], enter: dict[str, str]) -> None:
    for name in leave:
        (folder / name).unlink()
    for name, text in enter.items():
        (folder / name).write_text(text)


def fingerprint(store: Store) -> tuple[tuple[Any, ...], ...]:
    """What the index holds, independent of row numbers: articles and passages with their spans."""
    db = store.db
    articles = tuple(sorted(db.execute("SELECT article_id, record_hash, body_hash FROM articles")))
    passages = tuple(sorted(db.execute('SELECT body_hash, ordinal, start, "end", text FROM passages')))
    return articles, passages


@dataclass(frozen=True)
class Plan:
    """Where one trial kills the build: on the `hit`-th run of a code line, or after `delay` seconds."""

    line: tuple[str, int, int] | None = None
    delay: float | None = None
    phase: str = "random time"


def plans(reference: list[list[Any]], seconds: float, count: int, rng: random.Random) -> list[Plan]:
    """Kill points spread over the whole build: lines drawn from equal slices of the build's code path
    (in the order it first runs them), and random moments of its wall-clock time."""
    commit = next(at for at, (file, line, *_) in enumerate(reference) if _source(file, line) == 'db.execute("COMMIT")')
    apply = next(at for at, (*_, function) in enumerate(reference) if function == "apply")
    chosen: list[Plan] = []
    by_line = count * 2 // 3
    for stratum in range(by_line):
        at = rng.randrange(stratum * len(reference) // by_line, (stratum + 1) * len(reference) // by_line)
        file, line, hits, _ = reference[at]
        phase = "before apply" if at < apply else "apply, before commit" if at <= commit else "after commit"
        chosen.append(Plan(line=(file, line, rng.randint(1, hits)), phase=phase))
    chosen += [Plan(delay=rng.uniform(0.0, seconds * 1.1)) for _ in range(count - by_line)]
    return chosen


def _source(file: str, line: int) -> str:
    return Path(file).read_text().splitlines()[line - 1].strip()


def test_builds_killed_at_many_moments_leave_the_old_or_new_index(
    server: BuildServer, articles: Path, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(20240611)
    monkeypatch.setattr(faiss_deltas, "DELTA_SHARE", 10.0)  # the syncs that finish a trial write deltas
    settings = Settings(articles, tmp_path / "index", passage_words=30)  # short passages: quick to embed
    kept, first, second = (generated_articles(name, count, rng) for name, count in
                           (("kept", 10), ("first", 1), ("second", 1)))
    switch(articles, {}, {**kept, **first})
    Library(settings, embedder=embedder).sync()
    states = {"first": fingerprint(Store(settings.index_dir))}
    groups = {"first": first, "second": second}

    # Two reference builds, one each way (a delta towards "second", a merge towards "first"), record the
    # code path and its duration.
    references: dict[str, tuple[list[list[Any]], float]] = {}
    for source, target in (("first", "second"), ("second", "first")):
        switch(articles, groups[source], groups[target])
        trace = tmp_path / f"trace-{target}.json"
        ended = server.build(
            articles=str(articles), index=str(settings.index_dir), trace=str(trace), delta_share=WAYS[target][1]
        )
        assert ended["outcome"] == "exit 0", (server.log.read_text()[-3000:])
        references[target] = json.loads(trace.read_text()), ended["seconds"]
        store = Store(settings.index_dir)
        assert store.check() == []
        assert bool(store.manifest()["faiss_deltas"]) is (WAYS[target][0] == "delta")
        states.setdefault(target, fingerprint(store))
        store.close()
    assert states["first"] != states["second"]

    survived: Counter[str] = Counter()
    merged_deltas = 0  # merge trials that started from a base with delta files
    outcomes: Counter[str] = Counter()
    schedule = {target: plans(*references[target], TRIALS // 2 + 1, rng) for target in groups}
    for trial in range(TRIALS):
        source, target = ("first", "second") if trial % 2 == 0 else ("second", "first")
        plan = schedule[target][trial // 2]
        way, share = WAYS[target]
        switch(articles, groups[source], groups[target])
        before = Store(settings.index_dir)
        deltas_before = len(before.manifest()["faiss_deltas"])
        before.close()
        ended = server.build(
            articles=str(articles), index=str(settings.index_dir), line=plan.line, delay=plan.delay,
            delta_share=share,
        )
        assert ended["outcome"] in ("killed", "exit 0"), f"trial {trial} {plan}: {server.log.read_text()[-3000:]}"

        reader = Store(settings.index_dir)
        assert reader.check() == [], f"trial {trial} {plan}"
        state = fingerprint(reader)
        assert state in (states[source], states[target]), f"trial {trial} {plan}: neither the old nor the new index"
        reader.close()

        library = Library(settings, embedder=embedder)
        report = library.sync()
        assert library.store.check() == [] and fingerprint(library.store) == states[target], f"trial {trial} {plan}"
        if plan.line and _source(*plan.line[:2]).startswith("fresh = embedder.encode(") and plan.line[2] > 1:
            assert report.passages_embedded < report.passages_added, "vectors embedded before the kill are reused"
        library.store.close()
        survived[f"{way}: {plan.phase}"] += 1
        merged_deltas += way == "merge" and deltas_before > 0
        left = "new" if state == states[target] else "old"
        outcomes[f"{ended['outcome'].replace('exit 0', 'finished')}, left {left}"] += 1

    print(f"\ncrash trials survived: {sum(survived.values())}/{TRIALS}; by kill point: {dict(survived)}; "
          f"outcomes: {dict(outcomes)}")
    assert sum(survived.values()) == TRIALS and merged_deltas == TRIALS // 2
    assert outcomes["killed, left old"] >= TRIALS // 3 and outcomes["killed, left new"] >= 2


def test_merges_killed_at_any_line_leave_the_index_as_the_sync_left_it(
    server: BuildServer, articles: Path, tmp_path: Path, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(20261202)
    monkeypatch.setattr(faiss_deltas, "DELTA_SHARE", 10.0)  # the syncs write deltas, never merge themselves
    settings = Settings(articles, tmp_path / "index", passage_words=30)
    kept, first, second = (generated_articles(name, count, rng) for name, count in
                           (("kept", 10), ("first", 1), ("second", 1)))
    switch(articles, {}, {**kept, **first})
    Library(settings, embedder=embedder).sync()
    groups, question = {"first": first, "second": second}, embedder.encode_query("council budget report")

    def with_deltas(trial: int) -> tuple[tuple[tuple[Any, ...], ...], list[tuple[int, float]]]:
        """Swap one article (a sync that writes a delta); the index's content and search results."""
        source, target = ("first", "second") if trial % 2 == 0 else ("second", "first")
        switch(articles, groups[source], groups[target])
        library = Library(settings, embedder=embedder)
        library.sync()
        assert library.store.manifest()["faiss_deltas"]
        state, results = fingerprint(library.store), library.store.search(question, 10)
        library.store.close()
        return state, results

    with_deltas(0)
    trace = tmp_path / "trace-merge.json"
    ended = server.build(articles=str(articles), index=str(settings.index_dir), trace=str(trace), merge=True,
                         delta_share=10.0)
    assert ended["outcome"] == "exit 0", server.log.read_text()[-3000:]
    reference = json.loads(trace.read_text())
    assert any(function == "merge_deltas" for *_, function in reference)

    outcomes: Counter[str] = Counter()
    for trial in range(1, MERGE_TRIALS + 1):
        state, results = with_deltas(trial)
        file, line, hits, _ = reference[rng.randrange(len(reference))]
        ended = server.build(articles=str(articles), index=str(settings.index_dir), line=[file, line,
                             rng.randint(1, hits)], merge=True, delta_share=10.0)
        assert ended["outcome"] in ("killed", "exit 0"), f"trial {trial}: {server.log.read_text()[-3000:]}"
        reader = Store(settings.index_dir)
        assert reader.check() == [], f"trial {trial} at {_source(file, line)}"
        assert fingerprint(reader) == state and reader.search(question, 10) == results, f"trial {trial}"
        merged = not reader.manifest()["faiss_deltas"]
        reader.close()
        outcomes[f"{ended['outcome'].replace('exit 0', 'finished')}, {'merged' if merged else 'deltas kept'}"] += 1
    print(f"\nmerge trials: {dict(outcomes)}")
    assert outcomes["killed, deltas kept"] >= 1
