"""Tests of ``helpdesk.security``: body size limit, CSRF tokens, rate limiting."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.datastructures import Headers
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from helpdesk import observability
from helpdesk.observability import (
    RequestIdFilter,
    RequestObservationMiddleware,
    flush_access_log,
)
from helpdesk.privacy.masking import MaskingFilter
from helpdesk.security import (
    BodySizeLimitMiddleware,
    CSRFMiddleware,
    RateLimiter,
    SecurityHeadersMiddleware,
    api_key_matches,
    client_ip,
    cross_site_reason,
    csrf_input,
    csrf_token,
    loggable_path,
    looks_like_browser,
    parse_rate,
    presented_api_key,
    rate_limited_message,
    verify_csrf,
)
from tests.helpers import Lines, soup

MB = 1024 * 1024
CHUNK = b"x" * (64 * 1024)
LIMIT = 1 * MB
TOO_LARGE = "送信データが大きすぎます(上限 1 MB)。写真は1枚10MBまでです。"


# -- Body size limit ---------------------------------------------------------------------------


async def read_body(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"received": len(body)})


async def read_form(request: Request) -> Response:
    async with request.form() as form:
        return JSONResponse({"fields": sorted(form.keys())})


async def read_nothing(request: Request) -> Response:
    return JSONResponse({"method": request.method})


def size_limited_app(max_bytes: int = LIMIT, **options: Any) -> Starlette:
    routes = [
        Route("/upload", read_body, methods=["GET", "POST", "PUT", "PATCH"]),
        Route("/api/upload", read_body, methods=["POST"]),
        Route("/form", read_form, methods=["POST"]),
        Route("/open/upload", read_body, methods=["POST"]),
    ]
    middleware = [Middleware(BodySizeLimitMiddleware, max_bytes=max_bytes, **options)]
    return Starlette(routes=routes, middleware=middleware)


def client_for(app: Any, base_url: str = "http://testserver") -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url)


class Chunks:
    """An async body of ``total`` 64 KB chunks that counts how many were pulled."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.total):
            self.pulled += 1
            yield CHUNK


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
async def test_declared_length_over_limit_is_refused_as_html(method: str) -> None:
    async with client_for(size_limited_app()) as client:
        response = await client.request(
            method,
            "/upload",
            content=b"x" * (LIMIT + 1),
            headers={"Referer": "http://testserver/returns?kind=defect"},
        )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    page = soup(response)
    assert page.html is not None and page.html["lang"] == "ja"
    assert TOO_LARGE in [p.get_text() for p in page.select("main p")]
    # The way back is the browser's back button, which keeps the form filled in.
    assert "「戻る」" in page.select_one(".back-hint").get_text()  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "referer",
    [
        "http://testserver/returns/new?kind=defect",  # the form itself
        "https://evil.example/returns",  # another site
        "http://testserver//evil.example/x",  # protocol-relative path
        "not a url",
        None,
    ],
)
async def test_413_page_links_to_no_empty_form_and_no_other_site(referer: str | None) -> None:
    # A link to the form opened it empty (issue 8): only the top page is linked.
    headers = {"Referer": referer} if referer else {}
    async with client_for(size_limited_app()) as client:
        response = await client.post("/upload", content=b"x" * (LIMIT + 1), headers=headers)
    assert response.status_code == 413
    assert [a["href"] for a in soup(response).select("a")] == ["/"]


async def test_declared_length_over_limit_is_refused_as_json_on_the_api() -> None:
    async with client_for(size_limited_app()) as client:
        response = await client.post("/api/upload", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    assert response.json() == {"error": TOO_LARGE}


async def test_json_accept_header_gets_json_anywhere() -> None:
    async with client_for(size_limited_app()) as client:
        response = await client.post(
            "/upload", content=b"x" * (LIMIT + 1), headers={"Accept": "application/json"}
        )
    assert response.status_code == 413
    assert response.json() == {"error": TOO_LARGE}


async def test_declared_length_is_refused_before_the_app_runs() -> None:
    called: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        called.append("app")

    async def receive() -> Message:
        called.append("receive")
        return {"type": "http.request", "body": b"", "more_body": False}

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = BodySizeLimitMiddleware(app, max_bytes=10)
    scope = http_scope("POST", "/upload", headers=[(b"content-length", b"11")])
    await middleware(scope, receive, send)
    assert called == []
    assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [413]


@pytest.mark.parametrize("path", ["/upload", "/api/upload"])
async def test_chunked_body_over_limit_is_cut_off_early(path: str) -> None:
    body = Chunks(total=200)  # 12.5 MB against a 1 MB limit
    async with client_for(size_limited_app()) as client:
        response = await client.post(path, content=body.__aiter__())
    assert response.status_code == 413
    if path.startswith("/api/"):
        assert response.json() == {"error": TOO_LARGE}
    else:
        assert TOO_LARGE in response.text
    # 1 MB is 16 chunks; the transport may pull one or two ahead.
    assert body.pulled <= LIMIT // len(CHUNK) + 3
    assert body.pulled < body.total


async def test_multipart_form_over_limit_is_cut_off() -> None:
    async def multipart() -> AsyncIterator[bytes]:
        yield b'--b\r\nContent-Disposition: form-data; name="photo"; filename="a.jpg"\r\n\r\n'
        for _ in range(100):
            yield CHUNK
        yield b"\r\n--b--\r\n"

    headers = {"Content-Type": "multipart/form-data; boundary=b"}
    async with client_for(size_limited_app()) as client:
        response = await client.post("/form", content=multipart(), headers=headers)
    assert response.status_code == 413


async def test_body_under_limit_passes() -> None:
    async with client_for(size_limited_app()) as client:
        declared = await client.post("/upload", content=b"x" * LIMIT)
        streamed = await client.post("/upload", content=Chunks(total=16).__aiter__())
        form = await client.post("/form", data={"name": "山田"}, files={"photo": CHUNK})
    assert declared.json() == {"received": LIMIT}
    assert streamed.json() == {"received": LIMIT}
    assert form.json() == {"fields": ["name", "photo"]}


async def test_get_and_other_paths_are_not_limited() -> None:
    app = size_limited_app(paths=("/upload", "/api/", "/form"))
    async with client_for(app) as client:
        # A GET may carry a body; it is not what the limit is for.
        get = await client.request("GET", "/upload", content=b"x" * (LIMIT + 1))
        other = await client.post("/open/upload", content=b"x" * (LIMIT + 1))
        limited = await client.post("/upload", content=b"x" * (LIMIT + 1))
    assert get.status_code == 200
    assert other.json() == {"received": LIMIT + 1}
    assert limited.status_code == 413


async def test_message_names_the_limits() -> None:
    app = size_limited_app(max_bytes=21 * MB, photo_mb=8)
    async with client_for(app) as client:
        response = await client.post("/api/upload", headers={"Content-Length": str(22 * MB)})
    assert response.json() == {
        "error": "送信データが大きすぎます(上限 21 MB)。写真は1枚8MBまでです。"
    }


def http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": headers or [],
        "client": ("127.0.0.1", 50000),
        "server": ("testserver", 80),
    }


def streaming_receive(total_chunks: int) -> Receive:
    remaining = total_chunks

    async def receive() -> Message:
        nonlocal remaining
        remaining -= 1
        return {"type": "http.request", "body": CHUNK, "more_body": remaining > 0}

    return receive


async def test_app_that_swallows_the_error_gets_disconnects_and_cannot_answer() -> None:
    seen: list[str] = []

    async def stubborn_app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            while (await receive()).get("more_body"):
                pass
        except Exception:
            seen.append("error")
        seen.append((await receive())["type"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = BodySizeLimitMiddleware(stubborn_app, max_bytes=LIMIT)
    await middleware(http_scope("POST", "/upload"), streaming_receive(100), send)
    assert seen == ["error", "http.disconnect"]
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [413]
    assert b"ok" not in b"".join(m.get("body", b"") for m in sent)


async def test_no_second_response_when_the_app_already_answered() -> None:
    async def echo_app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            message = await receive()
            await send({"type": "http.response.body", "body": b".", "more_body": True})
            if not message.get("more_body"):
                break
        await send({"type": "http.response.body", "body": b""})

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    middleware = BodySizeLimitMiddleware(echo_app, max_bytes=LIMIT)
    await middleware(http_scope("POST", "/upload"), streaming_receive(100), send)
    starts = [m for m in sent if m["type"] == "http.response.start"]
    assert [m["status"] for m in starts] == [200]


async def test_other_app_errors_still_propagate() -> None:
    async def broken(request: Request) -> Response:
        await request.body()
        raise LookupError("a real bug")

    app = BodySizeLimitMiddleware(
        Starlette(routes=[Route("/upload", broken, methods=["POST"])]), max_bytes=LIMIT
    )
    async with client_for(app) as client:
        with pytest.raises(LookupError):
            await client.post("/upload", content=b"small")


# -- The same against a real server ----------------------------------------------------------


def rss_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS in /proc/self/status")


class ResponseRecorder:
    """ASGI wrapper recording the statuses the server was asked to send."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.statuses: list[int] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.statuses.append(message["status"])
            await send(message)

        await self.app(scope, receive, recording_send)


@pytest.fixture
def live_server() -> Iterator[tuple[str, ResponseRecorder]]:
    recorder = ResponseRecorder(size_limited_app())
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        recorder, lifespan="off", log_level="warning", http="h11", loop="asyncio"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}", recorder
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
def test_real_server_refuses_200_mb_upload_with_flat_memory(
    live_server: tuple[str, ResponseRecorder], declared: bool
) -> None:
    url, recorder = live_server
    total_chunks = 200 * MB // len(CHUNK)
    pulled = 0

    def body() -> Iterator[bytes]:
        nonlocal pulled
        for _ in range(total_chunks):
            pulled += 1
            yield CHUNK

    peak = baseline = rss_bytes()
    sampling = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not sampling.is_set():
            peak = max(peak, rss_bytes())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    headers = {"Content-Length": str(total_chunks * len(CHUNK))} if declared else {}
    status: int | None = None
    try:
        with httpx.Client(timeout=60) as client:
            status = client.post(f"{url}/upload", content=body(), headers=headers).status_code
    except (httpx.RemoteProtocolError, httpx.WriteError, httpx.ReadError):
        pass  # the server may close the connection once it has answered
    finally:
        sampling.set()
        sampler.join()
    assert recorder.statuses == [413]
    assert status in (413, None)
    assert pulled > 0
    assert peak - baseline < 50 * MB, f"RSS grew by {(peak - baseline) / MB:.0f} MB"


# -- CSRF --------------------------------------------------------------------------------------

SECRET = "csrf-test-secret"


async def form_page(request: Request) -> Response:
    return HTMLResponse(f"<form method='post'>{csrf_input(request)}</form>")


async def token_twice(request: Request) -> Response:
    return JSONResponse([csrf_token(request), csrf_token(request)])


async def plain_page(request: Request) -> Response:
    return HTMLResponse("<p>no form here</p>")


async def submit(request: Request) -> Response:
    form = await request.form()
    ok = await verify_csrf(request, form)
    return JSONResponse({"ok": ok}, status_code=200 if ok else 403)


def csrf_app(secret: Any = SECRET) -> Starlette:
    routes = [
        Route("/form", form_page),
        Route("/twice", token_twice),
        Route("/plain", plain_page),
        Route("/submit", submit, methods=["POST"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(CSRFMiddleware, secret=secret)])


def form_token(response: httpx.Response) -> str:
    field = soup(response).select_one('form input[type="hidden"][name="csrf_token"]')
    assert field is not None
    return str(field["value"])


async def test_csrf_token_round_trip() -> None:
    async with client_for(csrf_app()) as client:
        page = await client.get("/form")
        token = form_token(page)
        assert client.cookies.get("madoguchi_csrf")
        by_form = await client.post("/submit", data={"csrf_token": token, "name": "山田"})
        by_header = await client.post("/submit", data={"x": "1"}, headers={"X-CSRF-Token": token})
        hex_token = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).hex()
        by_hex = await client.post("/submit", data={"csrf_token": hex_token})
    assert by_form.json() == {"ok": True}
    assert by_header.json() == {"ok": True}
    assert by_hex.json() == {"ok": True}


async def test_callable_secret_is_used() -> None:
    async with client_for(csrf_app(secret=lambda: SECRET)) as client:
        token = form_token(await client.get("/form"))
        response = await client.post("/submit", data={"csrf_token": token})
    assert response.json() == {"ok": True}


@pytest.mark.parametrize(
    "token",
    ["", "wrong", "A" * 43, "ｔｏｋｅｎ", "x" * 1000],
    ids=["empty", "wrong", "same-shape", "non-ascii", "huge"],
)
async def test_wrong_token_is_refused(token: str) -> None:
    async with client_for(csrf_app()) as client:
        await client.get("/form")
        response = await client.post("/submit", data={"csrf_token": token})
    assert response.status_code == 403 and response.json() == {"ok": False}


async def test_missing_field_is_refused() -> None:
    async with client_for(csrf_app()) as client:
        await client.get("/form")
        response = await client.post("/submit", data={"name": "山田"})
    assert response.status_code == 403 and response.json() == {"ok": False}


async def test_missing_cookie_is_refused() -> None:
    async with client_for(csrf_app()) as client:
        token = form_token(await client.get("/form"))
        client.cookies.clear()
        response = await client.post("/submit", data={"csrf_token": token})
    assert response.status_code == 403 and response.json() == {"ok": False}


async def test_token_for_another_cookie_is_refused() -> None:
    app = csrf_app()
    async with client_for(app) as alice, client_for(app) as mallory:
        alice_token = form_token(await alice.get("/form"))
        mallory_token = form_token(await mallory.get("/form"))
        assert alice.cookies["madoguchi_csrf"] != mallory.cookies["madoguchi_csrf"]
        assert alice_token != mallory_token
        response = await alice.post("/submit", data={"csrf_token": mallory_token})
    assert response.status_code == 403 and response.json() == {"ok": False}


async def test_token_signed_with_another_secret_is_refused() -> None:
    async with client_for(csrf_app(secret="another-secret")) as other:
        other_token = form_token(await other.get("/form"))
        cookie = other.cookies["madoguchi_csrf"]
    async with client_for(csrf_app()) as client:
        client.cookies.set("madoguchi_csrf", cookie)
        response = await client.post("/submit", data={"csrf_token": other_token})
        own_token = form_token(await client.get("/form"))
    assert response.status_code == 403 and response.json() == {"ok": False}
    assert own_token != other_token


def set_cookies(response: httpx.Response) -> list[str]:
    return response.headers.get_list("set-cookie")


@pytest.mark.parametrize("scheme", ["http", "https"])
async def test_cookie_is_set_once_with_the_right_flags(scheme: str) -> None:
    async with client_for(csrf_app(), base_url=f"{scheme}://testserver") as client:
        plain = await client.get("/plain")
        first = await client.get("/twice")
        second = await client.get("/form")
    assert set_cookies(plain) == []  # no token asked for, no cookie
    [cookie] = set_cookies(first)
    name_value, *attributes = [part.strip() for part in cookie.split(";")]
    name, value = name_value.split("=", 1)
    assert name == "madoguchi_csrf" and len(value) >= 32
    flags = {attribute.split("=")[0].lower(): attribute for attribute in attributes}
    assert "httponly" in flags
    assert flags["samesite"].lower() == "samesite=lax"
    assert flags["path"] == "Path=/"
    assert ("secure" in flags) is (scheme == "https")
    same_token, again = first.json()
    assert same_token == again
    assert set_cookies(second) == []
    assert form_token(second) == same_token


async def test_malformed_cookie_is_replaced() -> None:
    async with client_for(csrf_app()) as client:
        client.cookies.set("madoguchi_csrf", "chosen-by-someone-else")
        response = await client.get("/form")
    [cookie] = set_cookies(response)
    assert "chosen-by-someone-else" not in cookie


async def test_csrf_without_middleware_needs_a_secret() -> None:
    request = Request(http_scope("GET", "/form"))
    with pytest.raises(RuntimeError, match="CSRFMiddleware"):
        csrf_token(request)
    assert csrf_token(request, secret=SECRET) == csrf_token(request)


# -- CSRF in middleware: fail closed, cross-site refused ----------------------------------------


async def forgets_to_check(request: Request) -> Response:
    await request.form()
    return JSONResponse({"done": True})  # a handler that never calls verify_csrf


async def ignores_the_answer(request: Request) -> Response:
    form = await request.form()
    await verify_csrf(request, form)
    return JSONResponse({"done": True})  # and succeeds whatever it said


async def refuses_properly(request: Request) -> Response:
    form = await request.form()
    if not await verify_csrf(request, form):
        return JSONResponse({"error": "expired"}, status_code=403)
    return JSONResponse({"done": True})


async def own_scheme(request: Request) -> Response:
    return JSONResponse({"done": True})


def strict_app() -> Starlette:
    routes = [
        Route("/form", form_page),
        Route("/forgets", forgets_to_check, methods=["POST"]),
        Route("/ignores", ignores_the_answer, methods=["POST", "DELETE"]),
        Route("/proper", refuses_properly, methods=["POST"]),
        Route("/exempt", own_scheme, methods=["POST"]),
    ]
    middleware = [
        Middleware(
            CSRFMiddleware,
            secret=SECRET,
            exempt=[("POST", "/exempt")],
            allowed_origins=["https://help.example.jp"],
        )
    ]
    return Starlette(routes=routes, middleware=middleware)


async def test_a_handler_that_forgets_the_check_is_refused_not_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 10, #9: CSRF is enforced for every unsafe request, not opted into."""
    async with client_for(strict_app()) as client:
        token = form_token(await client.get("/form"))
        with caplog.at_level(logging.ERROR, logger="helpdesk.csrf"):
            forgot = await client.post("/forgets", data={"csrf_token": token})
        ignored = await client.post("/ignores", data={"csrf_token": "wrong"})
        deleted = await client.delete("/ignores")
        good = await client.post("/ignores", data={"csrf_token": token})
        proper = await client.post("/proper", data={"csrf_token": "wrong"})
        exempt = await client.post("/exempt", data={})
    assert forgot.status_code == 403 and "done" not in forgot.text
    assert "without verifying" in caplog.text
    assert ignored.status_code == 403 and deleted.status_code == 403
    assert good.json() == {"done": True}
    assert proper.status_code == 403 and proper.json() == {"error": "expired"}  # its own answer
    assert exempt.json() == {"done": True}


@pytest.mark.parametrize(
    ("headers", "refused"),
    [
        ({"Origin": "https://evil.example"}, True),
        ({"Origin": "null"}, True),
        ({"Sec-Fetch-Site": "cross-site"}, True),
        ({"Sec-Fetch-Site": "same-site"}, True),
        ({"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}, False),
        # Chromium on a page served with Referrer-Policy: no-referrer (a survey link).
        ({"Origin": "null", "Sec-Fetch-Site": "same-origin"}, False),
        ({"Origin": "null", "Sec-Fetch-Site": "cross-site"}, True),
        ({"Origin": "https://help.example.jp"}, False),  # the public base URL, via a proxy
        ({"Sec-Fetch-Site": "none"}, False),
        ({}, False),
    ],
)
async def test_cross_site_requests_never_reach_the_handler(
    headers: dict[str, str], refused: bool
) -> None:
    reached: list[bool] = []

    async def handler(request: Request) -> Response:
        reached.append(True)
        form = await request.form()
        ok = await verify_csrf(request, form)
        return JSONResponse({"ok": ok}, status_code=200 if ok else 403)

    app = Starlette(
        routes=[Route("/form", form_page), Route("/submit", handler, methods=["POST"])],
        middleware=[
            Middleware(CSRFMiddleware, secret=SECRET, allowed_origins=["https://help.example.jp/"])
        ],
    )
    async with client_for(app) as client:
        token = form_token(await client.get("/form"))
        response = await client.post("/submit", data={"csrf_token": token}, headers=headers)
        as_json = await client.post(
            "/submit", data={"csrf_token": token}, headers={**headers, "Accept": "application/json"}
        )
    if refused:
        assert response.status_code == 403 and not reached
        assert "別のサイトからの送信" in soup(response).select_one("main").get_text()
        assert as_json.status_code == 403 and "別のサイト" in as_json.json()["error"]
    else:
        assert response.json() == {"ok": True} and reached


def test_cross_site_reason() -> None:
    ours = Headers({"host": "shop.example:8443", "origin": "https://shop.example:8443"})
    assert cross_site_reason(ours) is None
    other = Headers({"host": "shop.example", "origin": "https://shop.example.evil.jp"})
    assert cross_site_reason(other) == "Origin: https://shop.example.evil.jp"
    assert cross_site_reason(Headers({"host": "a"})) is None


async def test_every_response_carries_the_security_headers() -> None:
    async def page(request: Request) -> Response:
        return HTMLResponse("<p>x</p>")

    async def own_cache(request: Request) -> Response:
        return HTMLResponse("<p>x</p>", headers={"Cache-Control": "private, max-age=60"})

    app = SecurityHeadersMiddleware(
        Starlette(
            routes=[
                Route("/", page),
                Route("/t/{ref}", page),
                Route("/console", page),
                Route("/console/t/{ref}/photos/x", own_cache),
            ]
        )
    )
    async with client_for(app) as client:
        home = await client.get("/")
        status = await client.get("/t/HD-26-00001?token=x")
        console = await client.get("/console")
        photo = await client.get("/console/t/HD-26-00001/photos/x")
        missing = await client.get("/nothing")
    for response in (home, status, console, photo, missing):
        csp = response.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp and "base-uri 'none'" in csp
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
    assert home.headers["referrer-policy"] == "same-origin"
    assert status.headers["referrer-policy"] == "no-referrer"  # the URL carries a token
    assert "cache-control" not in home.headers
    assert status.headers["cache-control"] == console.headers["cache-control"] == "no-store"
    assert photo.headers["cache-control"] == "private, max-age=60"


def test_secrets_in_paths_are_masked_in_the_access_log() -> None:
    assert loggable_path("/console/password/abcDEF-123") == "/console/password/***"
    assert loggable_path("/t/HD-26-00001") == "/t/HD-26-00001"


# -- Rate limiting -----------------------------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rate_limiter_sliding_window() -> None:
    clock = FakeClock()
    limiter = RateLimiter(3, 60, clock=clock)
    for offset in (0, 10, 20):
        clock.now = 1000 + offset
        assert limiter.hit("203.0.113.5") is None
    clock.now = 1030
    assert limiter.hit("203.0.113.5") == pytest.approx(30)
    assert limiter.hit("198.51.100.7") is None  # keys are independent
    clock.now = 1059.5
    assert limiter.hit("203.0.113.5") == pytest.approx(0.5)
    clock.now = 1060  # the hit at 1000 has left the window
    assert limiter.hit("203.0.113.5") is None
    clock.now = 1061  # hits at 1010, 1020, 1060 remain
    assert limiter.hit("203.0.113.5") == pytest.approx(9)
    clock.now = 1070
    assert limiter.hit("203.0.113.5") is None


def test_peek_answers_as_hit_would_and_counts_nothing() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, 60, clock=clock)
    assert limiter.peek("a") is None and len(limiter) == 0  # an unknown key is not added
    for _ in range(5):
        assert limiter.peek("a") is None  # peeking never uses up the allowance
    assert limiter.hit("a") is None
    clock.now = 1010
    assert limiter.hit("a") is None
    clock.now = 1030
    assert limiter.peek("a") == pytest.approx(30) == limiter.hit("a")
    clock.now = 1060  # the first hit has left the window
    assert limiter.peek("a") is None
    assert limiter.hit("a") is None


def test_refused_hits_do_not_extend_the_wait() -> None:
    clock = FakeClock()
    limiter = RateLimiter(1, 10, clock=clock)
    assert limiter.hit("a") is None
    for _ in range(50):
        clock.now += 0.1
        assert limiter.hit("a") is not None
    clock.now = 1010
    assert limiter.hit("a") is None


def test_rate_limiter_memory_is_bounded() -> None:
    clock = FakeClock()
    limiter = RateLimiter(2, 60, clock=clock, max_keys=100)
    for n in range(5000):
        limiter.hit(f"10.0.{n // 256}.{n % 256}")
        limiter.hit("regular")  # recently seen keys survive
        clock.now += 0.001
    assert len(limiter) == 100
    assert limiter.hit("regular") is not None
    assert limiter.hit("10.0.0.0") is None  # evicted long ago, so counted afresh


def test_idle_keys_are_dropped() -> None:
    clock = FakeClock()
    limiter = RateLimiter(5, 60, clock=clock)
    for n in range(500):
        limiter.hit(f"key-{n}")
    assert len(limiter) == 500
    clock.now += 61
    limiter.hit("newcomer")
    assert len(limiter) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10/10m", (10, 600.0)),
        ("20/hour", (20, 3600.0)),
        ("5/30s", (5, 30.0)),
        ("3/1.5h", (3, 5400.0)),
        ("1/day", (1, 86400.0)),
        (" 7 / 2 minutes ", (7, 120.0)),
        ("100/M", (100, 60.0)),
    ],
)
def test_parse_rate(text: str, expected: tuple[int, float]) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize(
    "text", ["", "10", "10/", "/10m", "ten/10m", "10/10x", "0/10m", "10/0s", "-1/10m", "1/2m3"]
)
def test_parse_rate_errors(text: str) -> None:
    with pytest.raises(ValueError, match="invalid rate"):
        parse_rate(text)


def request_from(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    scope = http_scope("POST", "/contact", headers)
    scope["client"] = (peer, 40000)
    return Request(scope)


def test_client_ip() -> None:
    spoofed = request_from("203.0.113.5", "198.51.100.1")
    assert client_ip(spoofed) == "203.0.113.5"
    assert client_ip(spoofed, trusted_proxies={"10.0.0.1"}) == "203.0.113.5"
    proxied = request_from("10.0.0.1", "1.2.3.4, 198.51.100.1")
    assert client_ip(proxied) == "10.0.0.1"
    # The client may put anything on the left; the trusted proxy appended the right end.
    assert client_ip(proxied, trusted_proxies={"10.0.0.1"}) == "198.51.100.1"
    chained = request_from("10.0.0.1", "198.51.100.1, 10.0.0.2")
    assert client_ip(chained, trusted_proxies={"10.0.0.0/8"}) == "198.51.100.1"
    garbage = request_from("10.0.0.1", "<script>")
    assert client_ip(garbage, trusted_proxies={"10.0.0.1"}) == "10.0.0.1"
    assert client_ip(Request({**http_scope("GET", "/"), "client": None})) == "unknown"


async def whoami(request: Request) -> Response:
    return JSONResponse({"client": client_ip(request)})


def _observed(trusted: tuple[str, ...] = ()) -> RequestObservationMiddleware:
    return RequestObservationMiddleware(
        Starlette(routes=[Route("/t/{ref}", whoami)]), trusted_proxies=trusted
    )


@asynccontextmanager
async def _client(app: ASGIApp, peer: str = "127.0.0.1") -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, client=(peer, 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "client"),
    [
        ((), "127.0.0.1", "198.51.100.1", "127.0.0.1"),  # loopback is no proxy by default
        (("127.0.0.1",), "127.0.0.1", "198.51.100.1", "198.51.100.1"),
        (("10.0.0.0/8",), "203.0.113.5", "198.51.100.1", "203.0.113.5"),
        (("10.0.0.0/8",), "10.0.0.1", "192.0.2.9, 198.51.100.1", "198.51.100.1"),
    ],
)
async def test_one_client_address_per_request_and_an_honest_access_log(
    trusted: tuple[str, ...], peer: str, forwarded: str, client: str, access_log: Lines
) -> None:
    async with _client(_observed(trusted), peer) as http:
        response = await http.get(
            "/t/HD-26-00001?token=secret-token", headers={"X-Forwarded-For": forwarded}
        )
    flush_access_log()
    assert response.json() == {"client": client}
    [line] = access_log.lines
    assert line.startswith(f"{client} ") and '"GET /t/HD-26-00001 HTTP/1.1" 200' in line
    assert (f"via {peer}" in line) is (client != peer)
    assert "secret-token" not in line  # status links carry the customer's token


async def test_personal_data_in_a_path_is_masked_in_the_access_log_line(
    access_log: Lines,
) -> None:
    # The access log masks the request's method and path itself (the filter then leaves
    # the record alone: MASKED): a phone number typed into a URL never reaches the log.
    access_log.addFilter(MaskingFilter())
    async with _client(_observed()) as http:
        await http.get("/t/０９０ー１２３４ー５６７８")
        await http.get("/t/hanako@example.jp")
    flush_access_log()
    assert access_log.lines == [
        '127.0.0.1 - "GET /t/[電話番号] HTTP/1.1" 200',
        '127.0.0.1 - "GET /t/[メール] HTTP/1.1" 200',
    ]


async def test_access_log_lines_are_written_together_soon_after_with_their_request(
    monkeypatch: pytest.MonkeyPatch, access_log: Lines
) -> None:
    # Lines wait for the others of the moment (ACCESS_LOG_DELAY), then each is its own
    # record with its request's id and time, written by the event loop without a flush.
    monkeypatch.setattr(observability, "ACCESS_LOG_DELAY", 0.5)
    access_log.addFilter(RequestIdFilter())
    async with _client(_observed()) as http:
        first = await http.get("/t/one", headers={"X-Request-ID": "proxy-id-0001"})
        await asyncio.sleep(0.2)
        second = await http.get("/t/two")
        assert access_log.records == []  # not yet: written together
        await asyncio.sleep(1.0)
    records = access_log.records
    assert access_log.lines == [
        '127.0.0.1 - "GET /t/one HTTP/1.1" 200',
        '127.0.0.1 - "GET /t/two HTTP/1.1" 200',
    ]
    assert first.headers["X-Request-ID"] == "proxy-id-0001"
    assert [r.request_id for r in records] == [  # type: ignore[attr-defined]
        "proxy-id-0001",
        second.headers["X-Request-ID"],
    ]
    # Each line has the time of its request, not of the moment the lines were written.
    assert records[1].created - records[0].created >= 0.2


async def test_access_log_lines_left_by_a_loop_that_ended_are_not_held_back(
    access_log: Lines,
) -> None:
    # A loop may end before its lines' moment comes (each test runs one): the next line,
    # in another loop, writes them first.
    app = _observed()

    async def one(path: str) -> None:
        async with _client(app) as http:
            await http.get(path)

    await asyncio.to_thread(asyncio.run, one("/t/ended"))  # a loop of its own, closed
    assert access_log.lines == []
    await one("/t/next")
    assert access_log.lines == ['127.0.0.1 - "GET /t/ended HTTP/1.1" 200']
    flush_access_log()
    assert access_log.lines[-1] == '127.0.0.1 - "GET /t/next HTTP/1.1" 200'


def test_the_last_request_id_header_is_the_proxys() -> None:
    # A client may send its own X-Request-ID; a proxy that sets one adds it after.
    headers = [(b"x-request-id", b"client-chosen-1"), (b"x-request-id", b"proxy-added-22")]
    assert observability._request_id(headers) == "proxy-added-22"
    assert observability._request_id([(b"x-request-id", b"<script>")]) != "<script>"


def test_api_keys_and_browsers() -> None:
    keys = ("key-one", "key-two")
    assert api_key_matches("key-two", keys)
    assert not api_key_matches("key-tw", keys)
    assert not api_key_matches("", keys) and not api_key_matches(None, keys)
    assert not api_key_matches("ｋｅｙ\udcff", keys)  # odd input: no match, no error
    assert not api_key_matches("key-one", ())
    assert presented_api_key(Headers({"authorization": "Bearer  abc "})) == "abc"
    assert presented_api_key(Headers({"x-api-key": "xyz"})) == "xyz"
    assert presented_api_key(Headers({"authorization": "Basic abc"})) is None
    assert looks_like_browser(Headers({"origin": "https://evil.example"}))
    assert looks_like_browser(Headers({"sec-fetch-site": "cross-site"}))
    assert not looks_like_browser(Headers({"user-agent": "curl/8", "referer": "x"}))


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [(0.2, "約1分後"), (59, "約1分後"), (61, "約2分後"), (600, "約10分後"), (7200, "約2時間後")],
)
def test_rate_limited_message(retry_after: float, wait: str) -> None:
    assert rate_limited_message(retry_after) == (
        f"送信が続いたため、しばらく受け付けを停止しています。{wait}にもう一度お試しください。"
    )
