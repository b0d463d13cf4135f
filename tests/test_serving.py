"""The chat server beyond the password, checked with raw HTTP requests against a live server.

Without a password only the loopback names with the server's port are accepted as Host (a
DNS-rebinding page sends its own name), and no request from another origin (another site's page
in the user's browser) reaches the API or the upload route. The server opens no share link, serves
no extra folders, and deletes Gradio's copies of uploads.
"""

from __future__ import annotations

import http.client
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client
from live import free_port, live_app

import qa.web
from qa.embed import Embedder
from qa.web import ChatApp

FOREIGN_HOSTS = ["evil.example:{port}", "127.0.0.1.evil.example:{port}", "127.0.0.1:{other}", "localhost", ""]
FOREIGN_ORIGINS = ["https://evil.example", "http://127.0.0.1:{other}", "http://localhost.evil.example:{port}", "null"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> Iterator[tuple[ChatApp, str]]:
    with live_app(tmp_path_factory.mktemp("serving"), embedder, watch=None) as (chat, url):
        yield chat, url


def port_of(url: str) -> int:
    return int(url.rstrip("/").rsplit(":", 1)[1])


def request(
    url: str, method: str, path: str, headers: dict[str, str] | None = None, body: bytes | None = None
) -> tuple[int, bytes]:
    """One real HTTP request to the server at `url`; `headers` may replace Host. Returns (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port_of(url), timeout=60)
    try:
        connection.request(method, path, body=body, headers={"Host": f"127.0.0.1:{port_of(url)}", **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def call_retrieve(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """POST a /retrieve call the way a script in a web page would."""
    body = json.dumps({"data": ["What is the ECB deposit rate?", 1, ""]}).encode()
    return request(url, "POST", "/gradio_api/call/retrieve", {"Content-Type": "application/json", **(headers or {})},
                   body)


def upload(url: str, name: str, text: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """POST one file to Gradio's upload route, as the page's upload box does."""
    boundary = uuid.uuid4().hex
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
        f"Content-Type: text/plain\r\n\r\n{text}\r\n--{boundary}--\r\n"
    ).encode()
    return request(url, "POST", "/gradio_api/upload", {"Content-Type": f"multipart/form-data; boundary={boundary}",
                                                        **(headers or {})}, body)


@pytest.mark.parametrize("host", FOREIGN_HOSTS)
def test_without_a_password_a_foreign_host_name_is_refused(server: tuple[ChatApp, str], host: str) -> None:
    port = port_of(server[1])
    foreign = host.format(port=port, other=port + 1)
    for method, path in [("GET", "/"), ("GET", "/config"), ("POST", "/gradio_api/call/retrieve")]:
        status, body = request(server[1], method, path, {"Host": foreign, "Content-Type": "application/json"}, b"{}")
        assert status == 403 and b"is not this server" in body, (method, path, status)


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost", "[::1]", "LOCALHOST"])
def test_the_loopback_names_with_the_servers_port_get_the_page(server: tuple[ChatApp, str], name: str) -> None:
    status, body = request(server[1], "GET", "/", {"Host": f"{name}:{port_of(server[1])}"})
    assert status == 200 and b"News articles assistant" in body


@pytest.mark.parametrize("origin", FOREIGN_ORIGINS)
def test_another_origin_cannot_call_the_api_or_upload(server: tuple[ChatApp, str], origin: str) -> None:
    port = port_of(server[1])
    foreign = {"Origin": origin.format(port=port, other=port + 1)}
    status, body = call_retrieve(server[1], foreign)
    assert status == 403 and b"cannot use this assistant" in body
    status, _ = upload(server[1], "planted.txt", "Planted\n\nA page from another site sent this.\n", foreign)
    assert status == 403


@pytest.mark.parametrize("name", ["127.0.0.1", "localhost"])
def test_the_pages_own_origin_calls_the_api_and_reads_the_answer(server: tuple[ChatApp, str], name: str) -> None:
    own = f"{name}:{port_of(server[1])}"
    status, body = call_retrieve(server[1], {"Host": own, "Origin": f"http://{own}"})
    assert status == 200, body
    event = json.loads(body)["event_id"]
    status, stream = request(server[1], "GET", f"/gradio_api/call/retrieve/{event}", {"Host": own})
    assert status == 200 and "ECB holds interest rates" in stream.decode()


def test_clients_without_an_origin_header_still_work(server: tuple[ChatApp, str]) -> None:
    hits = Client(server[1], verbose=False).predict("What is the ECB deposit rate?", 1, api_name="/retrieve")
    assert hits["hits"][0]["title"].startswith("ECB holds")


def test_with_a_password_any_host_name_is_served_but_other_origins_are_still_refused(
    server: tuple[ChatApp, str],
) -> None:
    guarded = ChatApp(server[0].library, watch=None)
    url = guarded.launch(port=free_port(), auth=("reader", "s3cret"), block=False)
    try:
        host = f"assistant.lan:{port_of(url)}"
        assert request(url, "GET", "/", {"Host": host})[0] == 200
        status, body = call_retrieve(url, {"Host": host, "Origin": "https://evil.example"})
        assert status == 403 and b"cannot use this assistant" in body
    finally:
        guarded.close()


def test_no_share_link_and_no_extra_folders_whatever_the_environment_says(
    server: tuple[ChatApp, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = tmp_path / "private" / "diary.txt"
    secret.parent.mkdir()
    secret.write_text("not for the web\n")
    monkeypatch.setenv("GRADIO_SHARE", "True")
    monkeypatch.setenv("GRADIO_ALLOWED_PATHS", str(secret.parent))
    chat = ChatApp(server[0].library, watch=None)
    url = chat.launch(port=free_port(), block=False)
    try:
        assert chat.blocks.share is False and chat.blocks.share_url is None
        status, body = request(url, "GET", f"/gradio_api/file={secret}")
        assert status == 403 and b"not for the web" not in body
    finally:
        chat.close()


def test_gradios_copies_of_uploads_are_deleted_once_old(
    server: tuple[ChatApp, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert server[0].blocks.delete_cache == qa.web.CACHE_CLEANUP
    monkeypatch.setattr(qa.web, "CACHE_CLEANUP", (1, 1))  # check every second, delete after one
    chat = ChatApp(server[0].library, watch=None)
    url = chat.launch(port=free_port(), block=False)
    try:
        status, body = upload(url, "note.txt", "Note\n\nKept by Gradio until the cache is cleaned.\n")
        assert status == 200, body
        copy = Path(json.loads(body)[0])
        assert copy.is_file()
        deadline = time.monotonic() + 30
        while copy.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not copy.exists()
    finally:
        chat.close()


def test_requirements_admit_only_gradio_versions_with_the_parameters_the_page_uses() -> None:
    from importlib.metadata import version

    from packaging.requirements import Requirement

    lines = (Path(__file__).resolve().parent.parent / "requirements.txt").read_text().splitlines()
    gradio = next(Requirement(line.split("#")[0]) for line in lines if line.startswith("gradio"))
    assert version("gradio") in gradio.specifier
    assert "5.50.0" not in gradio.specifier  # launch(theme=, css=) and api_visibility= are Gradio 6
    assert "6.14.0" not in gradio.specifier  # launch(num_workers=) came in 6.15
