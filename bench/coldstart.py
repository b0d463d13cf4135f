"""Cold start: seconds from `python app.py` to the page answering a question, with an up-to-date index.

    python -m bench.coldstart [--quick] [--rounds R] [--json OUT]

First builds an index of `seeds/` in a temporary folder (`python -m qa index --index DIR`) and makes
sure the question encoder is ready (`Embedder.warm_up()`: with the ONNX path, its one-time export
is cached then, as after any earlier start on this machine). Each round
then starts `python app.py --port FREE --index DIR` as a subprocess (the sync finds nothing to
embed) and polls the page with `gradio_client` until `/ask` answers "Who interviewed Maduro?". It
reports when the port first accepted a connection (page up) and when the answer arrived (answering),
both counted from the moment the process was started. Medians over rounds (3; 1 with `--quick`).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .bbc import REPO_ROOT
from .corpus import write_json

QUESTION = "Who interviewed Maduro?"
TIMEOUT = 180.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_once(index_dir: Path) -> tuple[float, float]:
    """(seconds until the port accepts a connection, seconds until /ask has answered)."""
    from gradio_client import Client

    port = free_port()
    environment = {**os.environ, "QA_WATCH_SECONDS": "0", "GRADIO_ANALYTICS_ENABLED": "False"}
    started = time.perf_counter()
    server = subprocess.Popen(
        [sys.executable, "app.py", "--port", str(port), "--index", str(index_dir)],
        cwd=REPO_ROOT, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            if server.poll() is not None:
                raise RuntimeError(f"app.py exited with code {server.returncode} before answering")
            if time.perf_counter() - started > TIMEOUT:
                raise RuntimeError(f"app.py did not answer within {TIMEOUT:.0f} s")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        page_up = time.perf_counter() - started
        reply = Client(f"http://127.0.0.1:{port}/", verbose=False).predict(QUESTION, 3, None, api_name="/ask")
        answering = time.perf_counter() - started
        if "[1]" not in str(reply):
            raise RuntimeError(f"unexpected reply: {str(reply)[:200]}")
        return page_up, answering
    finally:
        server.terminate()
        server.wait(timeout=30)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one round (under a minute)")
    parser.add_argument("--rounds", type=int, help="app starts to time (default 3; 1 with --quick)")
    parser.add_argument("--json", type=Path, help="write the figures as JSON")
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)

    with tempfile.TemporaryDirectory() as folder:
        index_dir = Path(folder) / "index"
        subprocess.run([sys.executable, "-m", "qa", "index", "--index", str(index_dir)], cwd=REPO_ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        warm_up = "from qa import Settings, embed; embed.Embedder.from_settings(Settings.from_env()).warm_up()"
        subprocess.run([sys.executable, "-c", warm_up], cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        times = [start_once(index_dir) for _ in range(rounds)]
    page_up = statistics.median(up for up, _ in times)
    answering = statistics.median(answer for _, answer in times)
    result = {"rounds": rounds, "page_up_s": round(page_up, 2), "answering_s": round(answering, 2),
              "rounds_s": [[round(up, 2), round(answer, 2)] for up, answer in times]}
    print(f"`python app.py` with an up-to-date index of seeds/, medians of {rounds} round(s)\n")
    print("| step | seconds after start |\n|---|---:|")
    print(f"| port accepts connections | {page_up:.1f} |\n| `/ask` answered \"{QUESTION}\" | {answering:.1f} |")
    write_json(args.json, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
