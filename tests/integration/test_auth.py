"""Access control at the front door (http.auth 'token'): every route the app registers, read
from its router, walked with no token and with a bad, an expired, a revoked, a wrong-camera
and a good one, in every form a client can send it (query, path prefix, Bearer, Basic)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import jwt
import pytest
import zmq.asyncio
from aiohttp import web
from yarl import URL

from tests.stack import Stack
from titanium.common.config import Config, load_config
from titanium.common.tokens import Tokens
from titanium.services.mjpeg import auth, cors
from titanium.services.mjpeg.app import make_app

CAMERAS = [
    {"id": "cam1", "device": "testpattern", "resolution": "320x240", "fps": 10},
    {"id": "cam2", "device": "testpattern", "resolution": "320x240", "fps": 10},
]
# Generous limits: this walk sends hundreds of requests from one address on purpose.
LIMITS = {
    "signalling_rate": 10000,
    "signalling_burst": 10000,
    "snapshot_rate": 10000,
    "snapshot_burst": 10000,
    "sessions_per_token": 10000,
    "sessions_per_address": 10000,
}
# Values for the router's placeholders; a route with a new one fails the walk until it is
# named here, so it cannot go unwalked.
PLACEHOLDERS = {
    "camera": "cam1",
    "session": "nosuch",
    "script": "titanium-video",
    "name": "seg0.mp4",
}
# What loads without a token: the viewer page (no ?action=, also as go2rtc's /stream.html)
# and its scripts. Nothing else.
PUBLIC = {"/", "/stream.html", "/{script}.js"}
# What a token for another camera may read: its own cameras' part of these.
LISTINGS = {"/status", "/api/streams"}
REASONS = {
    "missing": "this needs a token (?token=, /t/TOKEN/…, Bearer or Basic)",
    "bad": "the token is not one this Titanium issued",
    "expired": "the token has expired",
    "revoked": "the token was revoked",
    "wrong_camera": "the token does not cover camera 'cam1'",
}


@dataclasses.dataclass
class Walk:
    stack: Stack
    tokens: dict[str, str]  # case → token
    routes: list[tuple[str, str]]  # (canonical path, method), from the app's router


@contextlib.asynccontextmanager
async def running_app(
    config: Config, extend: Callable[[web.Application], None] = lambda app: None
) -> AsyncIterator[web.AppRunner]:
    """The front door's app built from ``config`` (``extend`` adds to it) and started (no
    site): its sockets are closed by its own cleanup, so the ZeroMQ context can end."""
    config.runtime_dir.mkdir(parents=True, exist_ok=True)
    ctx = zmq.asyncio.Context()
    app = make_app(config, ctx, time.time())
    extend(app)
    runner = web.AppRunner(app, access_log=None)  # as __main__.py serves it
    try:
        await runner.setup()
        yield runner
    finally:
        await runner.cleanup()
        ctx.term()


def registered_routes(config_path: Path, tmp: Path) -> list[tuple[str, str]]:
    """Every (path, method) the front door's app registers, read from its router. The app
    is built on a runtime dir of its own: binding the stack's bus endpoints would take
    them from the running front door."""
    config = dataclasses.replace(load_config(config_path), runtime_dir=tmp)

    async def read() -> list[tuple[str, str]]:
        async with running_app(config) as runner:
            return [
                (resource.canonical, route.method)
                for resource in runner.app.router.resources()
                for route in resource
            ]

    return asyncio.run(read())


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Walk]:
    work = tmp_path_factory.mktemp("auth")
    tokens = Tokens(work / "state")  # Stack's state_dir: tokens made before it starts
    good = tokens.create("good", ["cam1"], "view", ttl=3600)[0]
    wrong = tokens.create("cam2 only", ["cam2"], "view", ttl=3600)[0]
    revoked, grant = tokens.create("revoked", ["cam1"], "view", ttl=3600)
    tokens.revoke(grant.id)
    expired = jwt.encode(
        {"jti": "e1", "sub": "x", "cams": ["cam1"], "exp": int(time.time()) - 5},
        tokens.key(),
        algorithm="HS256",
    )
    other_key = jwt.encode(
        {"jti": "b1", "sub": "x", "exp": int(time.time()) + 3600}, b"k" * 32, algorithm="HS256"
    )
    stack = Stack(work, CAMERAS, http={"auth": "token", "limits": LIMITS})
    try:
        routes = registered_routes(stack.config_path, work / "introspect")
        cases = {
            "good": good,
            "wrong_camera": wrong,
            "revoked": revoked,
            "expired": expired,
            "bad": other_key,
        }
        yield Walk(stack, cases, routes)
    finally:
        stack.stop()


def concrete(path: str, token: str | None) -> str:
    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "token":
            assert token is not None
            return token
        assert name in PLACEHOLDERS, f"route {path}: no test value for {{{name}}}; add one"
        return PLACEHOLDERS[name]

    return re.sub(r"\{(\w+)\}", fill, path)


def presented(form: str, token: str) -> tuple[dict[str, str], dict[str, str]]:
    """(query, headers) that carry ``token`` in ``form``."""
    if form == "query":
        return {"token": token}, {}
    if form == "bearer":
        return {}, {"Authorization": f"Bearer {token}"}
    if form == "basic":
        basic = base64.b64encode(f"octoprint:{token}".encode()).decode()
        return {}, {"Authorization": f"Basic {basic}"}
    return {}, {}


async def send(
    http: aiohttp.ClientSession,
    url: str,
    method: str,
    query: dict[str, str],
    headers: dict[str, str],
) -> tuple[int, dict[str, str], Any]:
    if method == "HEAD":
        return await head(str(URL(url).with_query(query)), headers)
    async with http.request(method, url, params=query, headers=headers) as r:
        body: Any = None
        if r.headers.get("Content-Type", "").startswith("application/json"):
            body = json.loads(await r.content.read(65536) or b"null")
        return r.status, dict(r.headers), body


async def head(url: str, headers: dict[str, str]) -> tuple[int, dict[str, str], Any]:
    """HEAD by hand: HEAD /stream answers with the stream's bytes, which aiohttp's client
    refuses to parse (a quirk of its own, not what this walk looks at)."""
    target = URL(url)
    reader, writer = await asyncio.open_connection(target.host, target.port)
    lines = [f"HEAD {target.raw_path_qs} HTTP/1.1", f"Host: {target.host}:{target.port}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join([*lines, "Connection: close", "", ""])).encode())
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    finally:
        writer.close()
    status_line, *fields = head.decode("latin-1").split("\r\n")
    got = dict(f.split(": ", 1) for f in fields if ": " in f)
    return int(status_line.split()[1]), got, None


def expected(path: str, method: str, case: str) -> tuple[int | None, str]:
    """(status, reason) the walk expects; None: the route's own answer, not 401/403."""
    base = path.removeprefix("/t/{token}")
    if base in PUBLIC or case == "good":
        return None, ""
    if case == "wrong_camera":
        return (None, "") if base in LISTINGS else (403, REASONS[case])
    return 401, REASONS[case]


def test_every_route_refuses_what_it_must_in_every_form(walk: Walk) -> None:
    """Pins: with http.auth 'token' any route served video, status or signalling to a
    request with no token, or a bad, expired, revoked or other camera's one."""
    plain = [(p, m) for p, m in walk.routes if "{token}" not in p]
    prefixed = [(p, m) for p, m in walk.routes if "{token}" in p]
    assert prefixed and len(prefixed) == len(plain), walk.routes  # every route, prefixed too
    assert any(p == "/t/{token}/{camera}/whep/{session}" for p, _ in prefixed), walk.routes
    plan: list[tuple[str, str, str, str, str | None]] = []  # path, method, form, case, token
    for path, method in plain:
        plan.append((path, method, "none", "missing", None))
        for form in ("query", "bearer", "basic"):
            plan += [(path, method, form, c, t) for c, t in walk.tokens.items()]
    for path, method in prefixed:
        plan += [(path, method, "path", c, t) for c, t in walk.tokens.items()]

    async def main() -> list[str]:
        failures = []
        limit = asyncio.Semaphore(16)
        timeout = aiohttp.ClientTimeout(total=20)
        # A connection each: a streamed reply is not read to its end.
        connector = aiohttp.TCPConnector(force_close=True)
        async with aiohttp.ClientSession(timeout=timeout, connector=connector) as http:

            async def one(path: str, method: str, form: str, case: str, token: str | None) -> None:
                url = walk.stack.url(concrete(path, token if form == "path" else None))
                query, headers = presented(form, token or "")
                async with limit:
                    code, got_headers, body = await send(http, url, method, query, headers)
                status, reason = expected(path, method, case)
                what = f"{method} {path} {form} {case}: {code} {body}"
                if status is None:
                    if code in (401, 403) or (code >= 500 and code != 503):
                        failures.append(f"{what}: expected the route's own answer")
                    return
                if code != status:
                    failures.append(f"{what}: expected {status}")
                elif method != "HEAD" and (body or {}).get("error") != reason:
                    failures.append(f"{what}: expected the reason {reason!r}")
                challenge = got_headers.get("WWW-Authenticate")
                wants = status == 401 and form in ("basic", "none")
                if (challenge == 'Basic realm="Titanium"') != wants:
                    failures.append(f"{what}: WWW-Authenticate {challenge!r}")
                if got_headers.get("Access-Control-Allow-Origin") != "*":
                    failures.append(f"{what}: not readable cross-origin")

            await asyncio.gather(*(one(*p) for p in plan))
        return failures

    failures = asyncio.run(main())
    assert not failures, f"{len(failures)} of {len(plan)}:\n" + "\n".join(failures[:40])


def test_a_token_sees_its_own_cameras_in_status_and_streams_carry_frames(walk: Walk) -> None:
    """Pins: a token for cam2 read cam1's status; a good token in each form got a frame."""
    good, wrong = walk.tokens["good"], walk.tokens["wrong_camera"]

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            async with http.get(walk.stack.url("/status"), params={"token": wrong}) as r:
                doc = await r.json()
            assert r.status == 200 and list(doc["cameras"]) == ["cam2"], doc
            assert doc["auth"] == {"mode": "token", "exposed": False, "exempt_loopback": False}
            for url, headers in [
                (f"/stream?token={good}", {}),
                (f"/t/{good}/cam1/stream", {}),
                ("/cam1/stream", {"Authorization": f"Bearer {good}"}),
                ("/?action=stream", {"Authorization": f"Basic {_basic(good)}"}),
            ]:
                async with http.get(walk.stack.url(url), headers=headers) as r:
                    assert r.status == 200, (url, r.status)
                    chunk = b""
                    while b"\xff\xd8" not in chunk:
                        chunk += await asyncio.wait_for(r.content.read(4096), 10)

    asyncio.run(main())


def _basic(token: str, user: str = "anyone") -> str:
    return base64.b64encode(f"{user}:{token}".encode()).decode()


async def _served(runner: web.AppRunner, requests: list[tuple[str, dict[str, str]]]) -> list[Any]:
    """Serve ``runner`` on 127.0.0.1 and GET each (path, headers): (status, error) each."""
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    out = []
    async with aiohttp.ClientSession() as http:
        for path, headers in requests:
            async with http.get(f"http://127.0.0.1:{port}{path}", headers=headers) as r:
                body = await r.json() if r.content_type == "application/json" else None
                out.append((r.status, (body or {}).get("error")))
    return out


def test_a_route_added_later_needs_a_token_and_the_right_it_names(tmp_path: Path) -> None:
    """Pins: a route added to the app by hand (a future /metrics) was served to anyone,
    and a route needing 'control' was served to a 'view' token."""
    config_path = tmp_path / "titanium.json"
    config_path.write_text(
        json.dumps(
            {
                "titanium": {
                    "cameras": CAMERAS,
                    "runtime_dir": str(tmp_path / "run"),
                    "state_dir": str(tmp_path / "state"),
                    "http": {"auth": "token"},
                }
            }
        )
    )
    tokens = Tokens(tmp_path / "state")
    view = tokens.create("viewer", rights="view", ttl=3600)[0]
    control = tokens.create("operator", rights="control", ttl=3600)[0]

    async def ok(request: web.Request) -> web.Response:
        return web.Response(text="served")

    def more_routes(app: web.Application) -> None:
        app.router.add_get("/metrics", ok)
        resource = cors.add(app, "/pause", {"GET": ok})
        auth.record(app, resource, auth.Access(right="control"))

    async def main() -> list[Any]:
        async with running_app(load_config(config_path), more_routes) as runner:
            return await _served(
                runner,
                [
                    ("/metrics", {}),
                    (f"/metrics?token={view}", {}),
                    (f"/pause?token={view}", {}),
                    ("/pause", {"Authorization": f"Bearer {control}"}),
                ],
            )

    got = asyncio.run(main())
    assert got == [
        (401, REASONS["missing"]),
        (200, None),
        (403, "this needs the 'control' right; the token has 'view'"),
        (200, None),
    ], got


def _config_file(tmp_path: Path, http: dict[str, Any]) -> Path:
    path = tmp_path / "titanium.json"
    titanium = {
        "cameras": CAMERAS,
        "runtime_dir": str(tmp_path / "run"),
        "state_dir": str(tmp_path / "state"),
        "http": http,
    }
    path.write_text(json.dumps({"titanium": titanium}))
    return path


async def _status(runner: web.AppRunner, path: str = "/status") -> tuple[int, Any]:
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}{path}"
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return r.status, await r.json()


def test_an_open_port_without_auth_is_said_at_start_and_in_status(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Pins: listening on every interface with http.auth 'off' went unremarked. (Nothing
    listens on 0.0.0.0 here: the app is served on 127.0.0.1, the config says 0.0.0.0.)"""
    config = load_config(_config_file(tmp_path, {"listen": "0.0.0.0:8080"}))

    async def main() -> tuple[int, Any]:
        async with running_app(config) as runner:
            return await _status(runner)

    with caplog.at_level("WARNING", logger="titanium.mjpeg.auth"):
        code, doc = asyncio.run(main())
    assert code == 200 and doc["auth"]["mode"] == "off" and doc["auth"]["exposed"], doc
    assert "anyone on the network can watch" in doc["auth"]["warning"], doc
    assert any("anyone on the network can watch" in r.getMessage() for r in caplog.records)


def test_loopback_is_exempt_only_when_configured(tmp_path: Path) -> None:
    """Pins: http.auth_exempt_loopback (nginx authenticates) still asked loopback for a
    token, or the default let loopback in."""
    got = []
    for exempt in (True, False):
        sub = tmp_path / str(exempt)
        sub.mkdir()
        http = {"auth": "token", "auth_exempt_loopback": exempt}
        config = load_config(_config_file(sub, http))

        async def main(config: Config) -> tuple[int, Any]:
            async with running_app(config) as runner:
                return await _status(runner)

        code, doc = asyncio.run(main(config))
        got.append((code, doc.get("auth")))
    assert got == [
        (200, {"mode": "token", "exposed": False, "exempt_loopback": True}),
        (401, None),
    ], got


def test_a_revocation_reaches_the_front_door_and_its_callbacks_within_2s(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Pins: a token revoked by another process (titaniumctl) kept working at the front
    door, and nothing told the session owners (auth.AUTH's on_revoked) which one it was;
    and the error log printed a token from the path or the query."""
    config = load_config(_config_file(tmp_path, {"auth": "token"}))
    token, grant = Tokens(config.state_dir).create("revoke me", ttl=3600)
    heard: list[set[str]] = []

    async def on_revoked(ids: set[str]) -> None:
        heard.append(ids)

    async def boom(request: web.Request) -> web.Response:
        raise RuntimeError("a bug")

    def extend(app: web.Application) -> None:
        app[auth.AUTH].on_revoked.append(on_revoked)
        for path in ("/boom", "/t/{token}/boom"):
            auth.record(app, cors.add(app, path, {"GET": boom}), auth.Access(camera=False))

    async def main() -> tuple[list[Any], float]:
        async with running_app(config, extend) as runner:
            before = [await _status(runner, f"/status?token={token}")]
            before.append(await _status(runner, f"/boom?token={token}"))
            before.append(await _status(runner, f"/t/{token}/boom"))
            revoked_at = time.monotonic()
            await asyncio.to_thread(Tokens(config.state_dir).revoke, grant.id)
            while not heard and time.monotonic() - revoked_at < 5:
                await asyncio.sleep(0.05)
            took = time.monotonic() - revoked_at
            return [*before, await _status(runner, f"/status?token={token}")], took

    with caplog.at_level("DEBUG"):
        got, took = asyncio.run(main())
    assert [code for code, _ in got] == [200, 500, 500, 401], got
    assert got[3][1] == {"error": "the token was revoked"}, got
    assert heard == [{grant.id}] and took < 2.0, (heard, took)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "/boom failed" in logged and token not in logged, logged
