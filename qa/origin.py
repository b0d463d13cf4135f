"""Who may use the served page: an ASGI middleware that refuses foreign Hosts and cross-origin requests.

Without a password only the loopback names with the server's port are accepted as Host, so a
DNS-rebinding page cannot reach the assistant; a request sent from another origin (another site's
page in the user's browser) is refused whatever the password.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

logger = logging.getLogger(__name__)

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")  # Host names accepted when no password is set


class SameOrigin:
    """ASGI middleware: refuse (403) a request for a foreign Host, or one sent from another origin.

    Args:
        app: the application behind it.
        port: the server's port: only the loopback names with this port are accepted as Host. None:
            any Host (the page has a password).

    A request that carries an Origin header must come from the page it is sent to: its origin is
    `http://` or `https://` followed by the request's own Host. Requests without one (gradio_client,
    curl, the browser loading the page) pass that check.
    """

    def __init__(self, app: ASGIApp, port: int | None) -> None:
        self.app = app
        self.port = port
        self.hosts = None if port is None else {f"{name}:{port}" for name in LOOPBACK_NAMES}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            from starlette.datastructures import Headers

            refusal = self.refusal(Headers(scope=scope))
            if refusal:
                logger.warning("refused a request: %s", refusal)
                await refuse(scope, receive, send, refusal)
                return
        await self.app(scope, receive, send)

    def refusal(self, headers: Mapping[str, str]) -> str:
        """Why a request with these headers is refused, or "" when it is accepted."""
        host = headers.get("host", "").lower()
        if self.hosts is not None and host not in self.hosts:
            return f"Host {host!r} is not this server; open the page at http://localhost:{self.port}/."
        origin = headers.get("origin")
        if origin is not None and origin.lower() not in (f"http://{host}", f"https://{host}"):
            return f"a page from {origin!r} cannot use this assistant; open it at its own address."
        return ""


async def refuse(scope: Scope, receive: Receive, send: Send, reason: str) -> None:
    """Answer 403 with `reason` as plain text (a websocket is closed before it opens)."""
    from starlette.responses import PlainTextResponse

    if scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1008, "reason": reason[:120]})
        return
    await PlainTextResponse(f"Refused: {reason}\n", status_code=403)(scope, receive, send)
