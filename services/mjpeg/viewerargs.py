"""What every viewer route reads from its request the same way: which camera (the path's
``/cam1/…``, else ``?camera=``, else the first) and ``?priority=``."""

from __future__ import annotations

from collections.abc import Collection

from aiohttp import web

from titanium.common.priority import parse_priority


def camera_named(request: web.Request, cameras: Collection[str], name: str | None = None) -> str:
    """``name``, else the camera the request names, else the first of ``cameras``; an
    unknown one is 404 with the cameras there are."""
    name = name or request.match_info.get("camera") or request.query.get("camera")
    if name is None:
        return next(iter(cameras))
    if name not in cameras:
        raise web.HTTPNotFound(text=f"no camera {name!r}; cameras: {', '.join(cameras)}\n")
    return name


def viewer_priority(request: web.Request) -> str:
    """``?priority=high|medium|low`` (common/priority.py), medium by default."""
    try:
        return parse_priority(request.query.get("priority"))
    except ValueError as e:
        raise web.HTTPBadRequest(text=f"{e}\n") from None
