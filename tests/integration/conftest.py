"""Fixtures for integration tests: real stacks (tests/stack.py) and headless Chromium."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.browser import Browser, find_chromium
from tests.integration.origin import OtherOrigin
from tests.stack import TITANIUMCTL, Stack, free_port

__all__ = ["TITANIUMCTL", "Stack", "free_port"]  # what the tests import from here


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def make(cameras: list[dict[str, Any]] | None = None, **titanium: Any) -> Stack:
        sub = tmp_path / f"stack{len(stacks)}"
        sub.mkdir()
        stack = Stack(
            sub, cameras or [{"device": "testpattern", "resolution": "640x480"}], **titanium
        )
        stacks.append(stack)
        return stack

    yield make
    for stack in stacks:
        stack.stop()


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    return make_stack()


@pytest.fixture
def browser() -> Iterator[Browser]:
    """A headless Chromium (see browser.py): ``browser.open(url)`` gives a Page with
    ``eval(js, timeout)``, ``wait_for(js, timeout)``, ``screenshot(path)`` and
    ``diagnostics()``. Chromium is stopped after the test however it ends; the test is
    skipped when Debian's ``chromium`` is not installed."""
    if find_chromium() is None:
        pytest.skip("browser tests need Debian's chromium: apt-get install chromium")
    with Browser.launch() as b:
        yield b


@pytest.fixture
def other_origin() -> Iterator[OtherOrigin]:
    """A page server on another port of 127.0.0.1 (tests/integration/origin.py)."""
    server = OtherOrigin()
    yield server
    server.close()
