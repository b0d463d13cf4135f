"""Serve the news articles assistant: `python app.py [--host HOST] [--port PORT]`.

Syncs the index with the articles folder (incrementally: with an up-to-date index nothing is
embedded), then serves the chat page on http://127.0.0.1:7860. Binding to anything beyond this
machine needs QA_AUTH=user:password, which then protects the page and its API.
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import sys
from collections.abc import Sequence

from qa import Library, QAError, Settings
from qa.cli import configure_logging, configure_process
from qa.errors import BusyError
from qa.progress import ProgressLine
from qa.schema import SyncReport

LOCAL_HOSTS = ("localhost",)
logger = logging.getLogger("app")


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog="python app.py",
        description="Sync the index with the articles folder, then serve the chat page and its API.",
        epilog="Environment: QA_HOST, QA_PORT, QA_AUTH (user:password; required to bind beyond localhost), "
        "QA_SOURCES (default sources per answer), QA_WATCH_SECONDS (folder check interval, 0 = off), and the "
        "other QA_* settings of `python -m qa` (see the README's configuration table). "
        "Flags win over the environment.",
    )
    command.add_argument("--host", help="interface to bind (default: $QA_HOST or 127.0.0.1)")
    command.add_argument("--port", type=int, help="port (default: $QA_PORT or 7860)")
    command.add_argument("--articles", metavar="DIR", help="articles folder (default: $QA_ARTICLES_DIR or seeds/)")
    command.add_argument("--index", metavar="DIR", help="index folder (default: $QA_INDEX_DIR or index/)")
    command.add_argument(
        "--sources", type=int, metavar="N", help="default sources per answer, 1-10 (default: $QA_SOURCES or 5)"
    )
    command.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    return command


def is_local(host: str) -> bool:
    """True when `host` only accepts connections from this machine."""
    if host.lower() in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_binding(host: str, auth: tuple[str, str] | None) -> None:
    """Raises QAError when the page would be reachable from other machines without a password."""
    if not is_local(host) and auth is None:
        raise QAError(
            f"Binding to {host} makes the assistant reachable from other machines: set QA_AUTH=user:password "
            "to protect it, or bind to 127.0.0.1."
        )


def prepare(library: Library) -> SyncReport | None:
    """Sync the index incrementally before serving: only new or changed articles are embedded.

    Returns None when another process is writing the index: the existing index is served, and the
    folder watch syncs once that process is done.
    """
    shown = ProgressLine(sys.stderr)  # a first build of a big folder takes minutes: passages/s and ETA
    try:
        report = library.sync(progress=shown)
    except BusyError as error:
        library.ensure_index()  # serves the existing index, or raises when there is none yet
        print(f"warning: {error} Serving the index as it is for now.", file=sys.stderr)
        return None
    finally:
        shown.close()
    for problem in report.problems:
        print(f"{'skipped' if problem.skipped else 'warning'}: {problem}", file=sys.stderr)
    print(report.summary(), file=sys.stderr)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    configure_process()
    configure_logging(args.verbose, lists_problems=True)
    try:
        settings = Settings.from_env(articles_dir=args.articles, index_dir=args.index, sources=args.sources)
        host, port, auth = args.host or settings.server.host, args.port or settings.server.port, settings.server.auth
        check_binding(host, auth)
        library = Library(settings)
        report = prepare(library)
        from qa.web import ChatApp

        app = ChatApp(library, sources=settings.sources, watch=settings.watch_seconds or None)
        library.warm_up()  # the question encoder now (ONNX: without torch), so the first question is quick
        print(f"Serving {library.settings.articles_dir} on http://{host}:{port}", file=sys.stderr)
        app.launch(host=host, port=port, auth=auth, block=True, synced=report is not None)
    except QAError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
