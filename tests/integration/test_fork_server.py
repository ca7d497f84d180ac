"""supervisord is the services' fork server (titanium/forkserve.py): each service is a fork
that shares the pages of what supervisord imported, instead of a fresh interpreter that
builds its own 15-17 MB (docs/performance.md, "Where the megabytes go")."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.integration.conftest import Stack

MB = 1 << 20
SERVICES = ("capture", "encoder", "governor", "mjpeg", "webrtc")


def _shared_anon(pid: int) -> int:
    """Bytes of the process's anonymous memory that another process maps too."""
    shared = 0
    anonymous = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if "-" in fields[0] and len(fields) >= 5 and fields[0][0] in "0123456789abcdef":
            path = fields[5] if len(fields) > 5 else ""
            anonymous = path in ("", "[heap]")
        elif anonymous and fields[0] in ("Shared_Clean:", "Shared_Dirty:"):
            shared += int(fields[1]) * 1024
    return shared


def _services(stack: Stack) -> dict[str, psutil.Process]:
    top = psutil.Process(stack.proc.pid)
    found = {}
    for child in top.children():
        try:
            title = " ".join(child.cmdline())
        except psutil.Error:  # a dead child not yet reaped by supervisord
            continue
        for name in SERVICES:
            if f"titanium-{name}" in title:
                found[name] = child
    return found


def _answers(stack: Stack) -> bool:
    try:
        return stack.get("/status", timeout=1)[0] == 200
    except OSError:
        return False


@pytest.mark.parametrize("fork", [True, False], ids=["fork", "exec"])
def test_services_share_what_supervisord_imported(
    make_stack: Callable[..., Stack], monkeypatch: pytest.MonkeyPatch, fork: bool
) -> None:
    """Forked, every service shares megabytes of anonymous memory with supervisord (30-37
    MB measured: the interpreter's objects of asyncio, zmq, numpy, aiortc, ...); exec'd
    (``TITANIUM_FORK=0``, what every service was before) it shares none, which is what
    this measurement would read if the fork server stopped forking."""
    monkeypatch.setenv("TITANIUM_FORK", "1" if fork else "0")
    stack = make_stack()
    services = _services(stack)
    assert sorted(services) == sorted(SERVICES), services
    shared = {name: _shared_anon(p.pid) / MB for name, p in services.items()}
    if fork:
        assert all(mb >= 8 for mb in shared.values()), f"shared anonymous MB: {shared}"
    else:
        assert all(mb < 1 for mb in shared.values()), f"shared anonymous MB: {shared}"


def test_a_killed_service_comes_back_as_a_fork_and_the_others_carry_on(
    make_stack: Callable[..., Stack],
) -> None:
    """A service that dies is forked again from supervisord (so it shares its pages again),
    under its own title, and the others keep their PIDs."""
    stack = make_stack()
    before = _services(stack)
    os.kill(before["mjpeg"].pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while True:
        now = _services(stack)
        back = now.get("mjpeg")
        if back is not None and back.pid != before["mjpeg"].pid and _answers(stack):
            break
        assert time.monotonic() < deadline, stack.log()
        time.sleep(0.2)
    assert _shared_anon(back.pid) >= 8 * MB
    assert {n: p.pid for n, p in now.items() if n != "mjpeg"} == {
        n: p.pid for n, p in before.items() if n != "mjpeg"
    }
