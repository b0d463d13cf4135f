"""The chat page and its API: Gradio Blocks over one `Library`. The only module that imports gradio.

The page has a chat with history (answers with `[n]` markers and numbered sources), the number of
sources per answer, an upload box that saves articles into the articles folder and syncs the index
in the background (questions are answered from the previous index meanwhile), and an index panel.
Under each source the chat lists "More on this story" (`qa.related`), and two buttons download the
conversation as Markdown or JSON (`qa.transcript`, from the `Answer`s the page keeps for each visitor).
Readers rate an answer with the chat's thumbs up / down, and a source of the last answer in the rating
row under the chat; the ratings are kept by the library (`qa.ratings`) and counted in the index panel.
Named API endpoints: `/ask` (the reply as Markdown), `/answer` (the same answer as JSON: quotes,
sources, found), `/retrieve` (hits as JSON), `/timeline` (a story's timeline as JSON), `/related` (an
article's related coverage), `/transcript` (questions asked as one conversation, as JSON and Markdown)
and `/upload`. "Timeline of X" and "how did X unfold?" get the timeline in the chat, and a Timeline
button under the latest answer shows the timeline of its question. Article text is untrusted: everything
taken from it is escaped before it becomes Markdown, and the chat renders no raw HTML tags, LaTeX or
custom tags on top of that.

Serving: no public share link, no folders served beyond Gradio's own, Gradio's copies of uploads
deleted after an hour, and `SameOrigin` in front of every route: without a password only the
loopback names with the server's port are accepted as Host (no DNS rebinding), and a request from
another origin (another site's page in the user's browser) is refused.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .background import BackgroundSync
from .errors import QAError
from .origin import SameOrigin
from .progress import describe_progress
from .related import more_on_sources
from .reply import escape_markdown, timeline_markdown, to_markdown
from .schema import Answer
from .search import clean_question
from .timeline import TIMELINE_ENTRIES, requested_topic, topic_for
from .transcript import save_transcript, transcript_json, transcript_markdown
from .uploads import MAX_UPLOAD_BYTES, save_upload

if TYPE_CHECKING:
    import gradio as gr

    from .assistant import Library

logger = logging.getLogger(__name__)

DEFAULT_SOURCES = 5
MAX_SOURCES = 10
ARTICLES_SHOWN = 300  # the index panel lists at most this many articles
REFRESH_SECONDS = 2.0  # how often the page refreshes the index panel (only when something changed)
PREVIOUS_KEPT = 10  # earlier questions kept per conversation for follow-ups
ANSWERS_KEPT = 100  # answers kept per conversation for its download
CACHE_CLEANUP = (600, 3600)  # every 600 s, Gradio's copies of uploads older than 3600 s are deleted
CSS = """
#chat mark { background: #fde68a; color: inherit; padding: 0 2px; border-radius: 2px; }
#index-panel table { font-size: 0.85em; }
"""
# After a reply, scroll the chat so the question and the start of its answer are in view (not the last source).
SCROLL_TO_ANSWER = """() => setTimeout(() => {
  const asked = document.querySelectorAll('#chat [data-testid=user]');
  const last = asked[asked.length - 1];
  const wrap = last && last.closest('.bubble-wrap');
  if (wrap) wrap.scrollTop += last.getBoundingClientRect().top - wrap.getBoundingClientRect().top - 8;
}, 100)"""
PLACEHOLDER = (
    "**Ask about the news articles.** Every answer quotes the articles word for word, with numbered sources. "
    "Follow-up questions (\"What did he offer?\") use the conversation."
)


class ChatApp:
    """The assistant's web page and API over one library.

    Args:
        library: the articles and their index (synced by the caller before `launch`).
        sources: the default number of sources per answer (1-10). Defaults to 5.
        watch: seconds between checks of the articles folder for changes; None: no folder watch.
    """

    def __init__(
        self,
        library: Library,
        sources: int = DEFAULT_SOURCES,
        watch: float | None = 3.0,
    ) -> None:
        if not 1 <= sources <= MAX_SOURCES:
            raise QAError(f"The number of sources must be from 1 to {MAX_SOURCES} (got {sources}).")
        self.library = library
        self.sources = sources
        self.background = BackgroundSync(library, interval=watch)
        self.exports = Path(tempfile.mkdtemp(prefix="qa-conversations-"))  # the downloads, deleted by `close`
        self.blocks = self._build()

    # -- what the handlers do (plain Python, no gradio) ------------------------------------

    def reply(
        self, question: str, sources: int = DEFAULT_SOURCES, previous: list[str] | None = None, mode: str | None = None
    ) -> str:
        """The chat reply (Markdown) for a question; our errors become a sentence, never an error page."""
        return self.turn(question, sources, previous, mode)[0]

    def turn(
        self, question: str, sources: int = DEFAULT_SOURCES, previous: list[str] | None = None, mode: str | None = None
    ) -> tuple[str, Answer | None]:
        """The chat reply (Markdown, with "More on this story" under the sources) and its answer (None
        when the question could not be answered, or asked for a timeline: the reply says why, or holds it)."""
        if requested_topic(question):
            return self.timeline_reply(topic_for(question, asked_before(previous)), mode), None
        try:
            answer = self.answer(question, sources, previous, mode)
            return to_markdown(answer, more_on_sources(answer, self.library.related)), answer
        except QAError as error:
            return f"⚠️ {escape_markdown(str(error))}", None
        except Exception:  # a bug must not become an error page either; the log has the details
            logger.exception("answering failed")
            return "⚠️ Something went wrong while answering; the server log has the details. Please try again.", None

    def timeline_reply(self, topic: str, mode: str | None = None) -> str:
        """The chat reply (Markdown) with the timeline of a topic; errors become a sentence, as in `reply`."""
        try:
            return timeline_markdown(self.library.timeline(topic, mode=mode or None))
        except QAError as error:
            return f"⚠️ {escape_markdown(str(error))}"
        except Exception:
            logger.exception("the timeline failed")
            return "⚠️ Something went wrong while making the timeline; the server log has the details. Please try again."

    def answer(
        self, question: str, sources: int = DEFAULT_SOURCES, previous: list[str] | None = None, mode: str | None = None
    ) -> Answer:
        """The composed answer (see `Library.answer`).

        Raises:
            QAError: the question or a setting cannot be used.
        """
        k = check_sources(sources)
        return self.library.answer(clean_question(question), k, asked_before(previous), mode or None)

    def hits(self, question: str, k: int = DEFAULT_SOURCES, mode: str | None = None) -> dict[str, Any]:
        """The `k` best passages as JSON: `{"question", "hits": [...]}` (see `Hit.to_json`)."""
        question = clean_question(question)
        found = self.library.retrieve(question, int(k), mode or None)
        return {"question": question, "hits": [hit.to_json() for hit in found]}

    def save(self, paths: list[str]) -> tuple[list[str], bool]:
        """Save uploaded files into the articles folder: one message line each, and whether any is new."""
        lines: list[str] = []
        changed = False
        for path in paths:
            original = Path(path).name
            try:
                saved = save_upload(Path(path), original, self.library.settings.articles_dir)
            except QAError as error:
                lines.append(f"✗ {escape_markdown(original)}: {escape_markdown(str(error))}")
                continue
            changed = changed or saved.status != "unchanged"
            lines.append(f"✓ {escape_markdown(saved.message())}")
        return lines, changed

    def index_panel(self) -> str:
        """Counts, model, last build, sync status and the list of articles, as Markdown."""
        try:
            status = self.library.status()
            articles = self.library.articles()
        except QAError as error:
            return f"**Index:** ⚠️ {escape_markdown(str(error))}"
        built = str(status.built_at or "never")
        plan, health = status.encoder, status.health
        lines = [
            f"**Index:** {status.articles} articles · {status.passages} passages · "
            f"model {escape_markdown(str(status.model or self.library.settings.model))} · "
            f"last build {escape_markdown(built)}",
            "",
            f"Store: {escape_markdown(self.library.settings.location.kind)} · embedding: "
            f"{escape_markdown(status.embedding.summary())}"
            + (f" · index vectors made with {escape_markdown(plan.summary())}" if plan else ""),
            "",
            (
                f"Self-check: searched by its headline, an article comes first {health.recall_at_1:.0%} of the time, "
                f"in the top 5 {health.recall_at_5:.0%} ({health.articles} articles sampled)."
                if health and health.articles else ""
            ),
            "",
            self.ratings_line(),
            "",
            self.sync_line(),
            "",
            "| Article | Date |",
            "|---|---|",
        ]
        for row in articles[:ARTICLES_SHOWN]:
            title, date = str(row[1] or row[0]), str(row[2] or "")
            lines.append(f"| {escape_markdown(title)} | {escape_markdown(date)} |")
        if len(articles) > ARTICLES_SHOWN:
            lines.append(f"| … and {len(articles) - ARTICLES_SHOWN} more | |")
        return "\n".join(lines)

    def rate(self, answer: Answer | None, rating: int, source: int | None = None) -> str:
        """Keep a reader's rating of an answer (source None) or of one of its sources; the sentence the page
        shows, our errors included."""
        if answer is None:
            return "Only answers can be rated: this reply is not one."
        try:
            self.library.rate(answer, rating, source)
        except QAError as error:
            return f"⚠️ {escape_markdown(str(error))}"
        what = "the answer" if source is None else f"source [{source}] of the answer"
        verdict = "helpful" if rating > 0 else "wrong"
        return f"Rated {what} to “{escape_markdown(answer.question)}” as {verdict}."

    def ratings_line(self) -> str:
        """How many answers and sources were rated, and the share rated helpful, as Markdown."""
        try:
            summary = self.library.ratings_summary()
        except QAError as error:
            return f"⚠️ {escape_markdown(str(error))}"
        if not summary.answers and not summary.sources:
            return "Ratings: none yet."
        return (
            f"Ratings: {counted(summary.answers, 'answer')} rated, {share(summary.answers_helpful, summary.answers)} "
            f"helpful · {counted(summary.sources, 'source')} rated, {share(summary.sources_helpful, summary.sources)} "
            "helpful"
        )

    def sync_line(self) -> str:
        state = self.background.state
        if state.running:
            progress = describe_progress(state.done, state.total, state.rate, state.eta)
            return f"🔄 Syncing the articles folder: {progress}…"
        when = datetime.fromtimestamp(state.finished_at).strftime("%H:%M:%S") if state.finished_at else ""
        if state.error:
            return f"⚠️ Last sync ({when}) failed: {escape_markdown(state.error)}"
        if state.report:
            skipped = [problem for problem in state.report.problems if problem.skipped]
            line = f"Last sync ({when}): {escape_markdown(state.report.summary())}"
            return line + "".join(f"\n\n✗ skipped {escape_markdown(str(problem))}" for problem in skipped[:10])
        return "Watching the articles folder for changes." if self.background.interval else ""

    # -- the page ------------------------------------------------------------------------------

    def _build(self) -> gr.Blocks:
        import gradio as gr

        with gr.Blocks(title="News articles assistant", analytics_enabled=False, delete_cache=CACHE_CLEANUP) as blocks:
            gr.Markdown("## News articles assistant")
            previous = gr.State([])
            answers = gr.State([])  # this conversation's Answer objects, for its download and ratings
            answer_rows = gr.State([])  # the chat message index of each kept answer
            pending = gr.State("")
            seen = gr.State(-1)
            with gr.Row():
                with gr.Column(scale=3):
                    chatbot = gr.Chatbot(
                        label="Chat", show_label=False, elem_id="chat", height=640, placeholder=PLACEHOLDER,
                        sanitize_html=True, allow_tags=False, latex_delimiters=[], render_markdown=True,
                        feedback_options=("Like", "Dislike"), buttons=["copy"], group_consecutive_messages=False,
                        autoscroll=False,
                    )
                    with gr.Row():
                        question = gr.Textbox(
                            show_label=False, placeholder="Ask a question about the articles…", elem_id="question",
                            scale=6, max_lines=4, autofocus=True,
                        )
                        ask = gr.Button("Ask", variant="primary", elem_id="ask", scale=1, min_width=80)
                    with gr.Row():
                        restart = gr.Button("New conversation", size="sm", elem_id="new-conversation")
                        save_markdown, save_json = (
                            gr.DownloadButton(f"Download as {kind}", size="sm", elem_id=f"save-{kind.lower()}",
                                              interactive=False) for kind in ("Markdown", "JSON")
                        )
                    with gr.Row(equal_height=True):
                        rated_source = gr.Radio(
                            [], label="Rate a source of the last answer", elem_id="rate-source", scale=4,
                        )
                        helpful = gr.Button("👍 Helpful", size="sm", elem_id="rate-helpful", scale=1, min_width=90)
                        wrong = gr.Button("👎 Wrong", size="sm", elem_id="rate-wrong", scale=1, min_width=90)
                    rate_status = gr.Markdown(elem_id="rate-status", latex_delimiters=[])
                with gr.Column(scale=2):
                    sources = gr.Slider(
                        1, MAX_SOURCES, value=self.sources, step=1, label="Sources per answer", elem_id="sources"
                    )
                    mode = gr.Radio(
                        ["hybrid", "dense", "bm25"], value=self.library.settings.mode, elem_id="mode",
                        label="Search: hybrid (words and meaning), dense (meaning), bm25 (exact words)",
                    )
                    upload = gr.File(
                        label=f"Add articles (.txt .md .html .htm .json .jsonl, {MAX_UPLOAD_BYTES // 2**20} MiB each)",
                        file_count="multiple", elem_id="upload", height=120,
                    )
                    upload_status = gr.Markdown(label="status", elem_id="upload-status", latex_delimiters=[])
                    with gr.Accordion("Index", open=True):
                        panel = gr.Markdown(label="index", elem_id="index-panel", latex_delimiters=[])
                        sync_now = gr.Button("Sync the folder now", size="sm", elem_id="sync-now")
            timer = gr.Timer(REFRESH_SECONDS)

            def take(message: str, history: list[dict[str, Any]]) -> tuple[Any, Any, Any]:
                if not message or not message.strip():
                    return gr.skip(), gr.skip(), ""
                return "", [*history, {"role": "user", "content": escape_markdown(message)}], message

            def respond(
                message: str, history: list[dict[str, Any]], earlier: list[str], answered: list[Answer],
                rows: list[int], k: float, how: str,
            ) -> tuple[Any, ...]:
                if not message:
                    return (gr.skip(),) * 7
                markdown, answer = self.turn(message, int(k), earlier, how)
                kept = [*answered, answer][-ANSWERS_KEPT:] if answer else answered
                kept_rows = [*rows, len(history)][-ANSWERS_KEPT:] if answer else rows
                reply: dict[str, Any] = {"role": "assistant", "content": markdown}
                sources = gr.skip()
                if answer is not None:
                    reply["options"] = [{"label": "Timeline", "value": "timeline"}]  # a button under the latest answer
                    sources = gr.update(choices=source_choices(answer), value=None)
                return ([*history, reply], [*earlier, message][-PREVIOUS_KEPT:], kept, kept_rows, sources,
                        *downloads(kept))

            def downloads(answered: list[Answer]) -> tuple[Any, Any]:
                """The download buttons for the conversation so far: disabled before its first answer."""
                if not answered:
                    return gr.update(value=None, interactive=False), gr.update(value=None, interactive=False)
                markdown, data = save_transcript(answered, self.exports, keep_seconds=CACHE_CLEANUP[1])
                return gr.update(value=str(markdown), interactive=True), gr.update(value=str(data), interactive=True)

            for trigger in (question.submit, ask.click):
                taken = trigger(
                    take, [question, chatbot], [question, chatbot, pending], queue=False, api_visibility="private"
                )
                taken.then(
                    respond, [pending, chatbot, previous, answers, answer_rows, sources, mode],
                    [chatbot, previous, answers, answer_rows, rated_source, save_markdown, save_json],
                    concurrency_limit=4,
                    api_visibility="private",
                ).then(None, js=SCROLL_TO_ANSWER, api_visibility="private")
            for cleared in (restart.click, chatbot.clear):  # the button, and the chat's bin icon
                cleared(
                    lambda: ([], [], [], [], gr.update(choices=[], value=None), "", *downloads([])), None,
                    [chatbot, previous, answers, answer_rows, rated_source, rate_status, save_markdown, save_json],
                    queue=False, api_visibility="private",
                )

            def rate_answer(answered: list[Answer], rows: list[int], liked: gr.LikeData) -> tuple[Any, Any]:
                """The chat's thumbs up / down on a reply: a rating of the answer it shows."""
                if not isinstance(liked.liked, bool):  # a rating taken back: the kept one stays
                    return gr.skip(), gr.skip()
                index = liked.index if isinstance(liked.index, int) else liked.index[0]
                answer = dict(zip(rows, answered, strict=False)).get(index)
                return self.rate(answer, 1 if liked.liked else -1), self.index_panel()

            rate_answer.__annotations__["liked"] = gr.LikeData  # gradio reads the type (a string here) to pass it
            chatbot.like(
                rate_answer, [answers, answer_rows], [rate_status, panel], queue=False, api_visibility="private"
            )

            def rate_source(answered: list[Answer], number: int | None, rating: int) -> tuple[Any, Any]:
                if not answered:
                    return "Ask a question first: its sources can then be rated.", gr.skip()
                if number is None:
                    return "Choose a source of the last answer first.", gr.skip()
                return self.rate(answered[-1], rating, int(number)), self.index_panel()

            for button, rating in ((helpful, 1), (wrong, -1)):
                button.click(
                    lambda answered, number, rating=rating: rate_source(answered, number, rating),
                    [answers, rated_source], [rate_status, panel], queue=False, api_visibility="private",
                )

            def show_timeline(history: list[dict[str, Any]], earlier: list[str], how: str) -> Any:
                """The timeline of the last question's topic."""
                asked = asked_before(earlier)
                if not asked:
                    return gr.skip()
                topic = topic_for(asked[-1], asked[:-1])
                return [*history, {"role": "user", "content": f"Timeline: {escape_markdown(topic)}"},
                        {"role": "assistant", "content": self.timeline_reply(topic, how)}]

            chatbot.option_select(
                show_timeline, [chatbot, previous, mode], [chatbot], concurrency_limit=4, api_visibility="private"
            ).then(None, js=SCROLL_TO_ANSWER, api_visibility="private")

            def add(paths: list[str] | None, progress: gr.Progress = gr.Progress()) -> Iterator[tuple[Any, ...]]:  # noqa: B008
                lines, changed = self.save(list(paths or []))
                if not changed:
                    yield "\n\n".join(lines) or "No file received.", gr.skip(), None
                    return
                ticket = self.background.request()
                while not self.background.wait(ticket, timeout=0.25):
                    state = self.background.state
                    if state.running and state.total:
                        progress((state.done, state.total), desc="Embedding passages", unit="passages")
                    yield "\n\n".join([*lines, self.sync_line()]), gr.skip(), gr.skip()
                state = self.background.state
                done = f"⚠️ {escape_markdown(state.error)}" if state.error else "Ready: ask about the new articles."
                yield "\n\n".join([*lines, done]), self.index_panel(), None

            upload.upload(add, [upload], [upload_status, panel, upload], api_name="upload", concurrency_limit=2)

            def sync_folder() -> Iterator[str]:
                ticket = self.background.request()
                while not self.background.wait(ticket, timeout=0.25):
                    yield self.index_panel()
                yield self.index_panel()

            sync_now.click(sync_folder, None, [panel], api_visibility="private")

            def refresh(version: int) -> tuple[Any, Any]:
                state = self.background.state
                return (gr.skip(), gr.skip()) if state.version == version else (self.index_panel(), state.version)

            timer.tick(refresh, [seen], [panel, seen], show_progress="hidden", api_visibility="private")
            blocks.load(self.index_panel, None, [panel], api_visibility="private")

            def ask_api(
                question: str, sources: int = DEFAULT_SOURCES, history: list[str] | None = None, mode: str = ""
            ) -> str:
                """Answer a question from the articles. `history`: earlier questions, for follow-ups; `mode`:
                dense, bm25 or hybrid ("" = the default). Returns the reply as Markdown: quoted sentences with
                [n] markers, then the numbered sources."""
                return self.reply(question, sources, history, mode)

            def retrieve_api(question: str, k: int = DEFAULT_SOURCES, mode: str = "") -> dict[str, Any]:
                """The k best passages for a question as JSON: {"question", "hits": [...]}, best first."""
                try:
                    return self.hits(question, k, mode)
                except QAError as error:
                    raise gr.Error(str(error)) from None

            def answer_api(
                question: str, sources: int = DEFAULT_SOURCES, history: list[str] | None = None, mode: str = ""
            ) -> dict[str, Any]:
                """The answer as JSON: {"question", "found", "confidence", "quotes": [{"source", "text", "start",
                "end", "score"}], "sources": [hit fields + "number", "relevance", "weak"], ...}."""
                try:
                    return self.answer(question, sources, history, mode).to_json()
                except QAError as error:
                    raise gr.Error(str(error)) from None

            def related_api(article_id: str, k: int = 3) -> dict[str, Any]:
                """The k articles closest to an article (1-20; near-copies left out), closest first:
                {"article_id", "related": [{"article_id", "title", "date", "url", "source", "publisher",
                "similarity"}]}."""
                try:
                    found = self.library.related(article_id, k)
                except QAError as error:
                    raise gr.Error(str(error)) from None
                return {"article_id": article_id, "related": [article.to_json() for article in found]}

            def transcript_api(questions: list[str], sources: int = DEFAULT_SOURCES, mode: str = "") -> dict[str, Any]:
                """Ask the questions (1-20) one after the other as one conversation and return it as the page's
                downloads hold it: {"json": {"format", "turns": [...]}, "markdown": "..."}."""
                try:
                    answered = self.library.conversation(questions, check_sources(sources), mode or None)
                except QAError as error:
                    raise gr.Error(str(error)) from None
                return {"json": transcript_json(answered), "markdown": transcript_markdown(answered)}

            def timeline_api(topic: str, limit: int = TIMELINE_ENTRIES) -> dict[str, Any]:
                """How a story unfolded, as JSON: {"topic", "found", "dated": [{"date", "text", "title", "url",
                "paragraph", "start", "end", "also_in", ...}], "undated": [...], "omitted", ...}, oldest first."""
                try:
                    return self.library.timeline(topic, limit).to_json()
                except QAError as error:
                    raise gr.Error(str(error)) from None

            gr.api(ask_api, api_name="ask", concurrency_limit=4)
            gr.api(timeline_api, api_name="timeline", concurrency_limit=4)
            gr.api(related_api, api_name="related", concurrency_limit=4)
            gr.api(transcript_api, api_name="transcript", concurrency_limit=2)
            gr.api(answer_api, api_name="answer", concurrency_limit=4)
            gr.api(retrieve_api, api_name="retrieve", concurrency_limit=4)
        return blocks

    # -- serving -------------------------------------------------------------------------------

    def launch(
        self,
        host: str = "127.0.0.1",
        port: int = 7860,
        auth: tuple[str, str] | None = None,
        block: bool = True,
        synced: bool = True,
    ) -> str:
        """Start the folder watch and serve the page; returns the local URL (when `block` is False).

        `synced`: the caller has just synced the index; when False, the folder watch syncs first.
        """
        import gradio as gr
        from starlette.middleware import Middleware

        self.background.start(synced=synced)
        logger.info("serving %s on %s:%d", self.library.settings.articles_dir, host, port)
        blocks = self.blocks

        @contextlib.asynccontextmanager
        async def no_extra_paths(app: object) -> AsyncIterator[None]:
            """Runs before the server accepts connections: GRADIO_ALLOWED_PATHS does not widen what is served."""
            blocks.allowed_paths = []
            yield

        blocks.queue(default_concurrency_limit=1)
        blocks.launch(
            server_name=host, server_port=port, auth=auth, prevent_thread_lock=not block, show_error=False,
            quiet=not block, max_file_size=2 * MAX_UPLOAD_BYTES, theme=gr.themes.Default(), css=CSS,
            share=False, ssr_mode=False, mcp_server=False, num_workers=0, strict_cors=True,
            app_kwargs={
                "middleware": [Middleware(SameOrigin, port=None if auth else port)], "lifespan": no_extra_paths
            },
        )
        return str(blocks.local_url)

    def close(self) -> None:
        """Stop serving and stop the folder watch."""
        self.blocks.close(verbose=False)
        self.background.stop()
        shutil.rmtree(self.exports, ignore_errors=True)


def source_choices(answer: Answer) -> list[tuple[str, int]]:
    """The rating row's choices for an answer's sources: "[n] title" (shown as text) and the number."""
    return [(f"[{s.number}] {s.hit.citation.title[:60]}", s.number) for s in answer.sources]


def share(part: int, whole: int) -> str:
    return f"{part / whole:.0%}" if whole else "-"


def counted(count: int, noun: str) -> str:
    return f"{count} {noun}" + ("" if count == 1 else "s")


def check_sources(sources: object) -> int:
    """The number of sources per answer, from 1 to MAX_SOURCES; raises QAError otherwise."""
    if isinstance(sources, bool) or not isinstance(sources, int | float) or not 1 <= sources <= MAX_SOURCES:
        raise QAError(f"The number of sources must be from 1 to {MAX_SOURCES} (got {sources!r}).")
    return int(sources)


def asked_before(previous: object) -> list[str]:
    """The earlier questions of a conversation fit to give a follow-up its context: the last
    PREVIOUS_KEPT of them that are questions, cleaned (the page's state and `/ask` send them)."""
    if not isinstance(previous, list | tuple):
        return []
    kept = []
    for earlier in previous[-PREVIOUS_KEPT:]:
        try:
            kept.append(clean_question(earlier))
        except QAError:
            continue
    return kept
