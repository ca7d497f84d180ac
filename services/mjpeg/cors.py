"""CORS for every route of the front door, written in one place.

Mainsail and Fluidd are served from port 80 while Titanium listens on 8080, so every request
from their pages is cross-origin: a route's preflight must name exactly the methods and
request headers that route takes (WHEP's trickle ``PATCH`` sends ``If-Match``), and every
reply, errors included, must carry ``Access-Control-Allow-Origin`` so the page can read it.

Routes are added through :func:`add`, which records each resource's :class:`Rule` and
answers its preflight; :func:`write_headers` runs as ``on_response_prepare``, so streamed
responses and error replies (aiohttp's own 404 and 405 too) get the same headers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Rule:
    """What one resource (one path) takes from a browser on another origin."""

    methods: tuple[str, ...]
    headers: tuple[str, ...] = ()  # request headers beyond the CORS-safelisted ones
    expose: tuple[str, ...] = ()  # response headers the page's script may read


RULES = web.AppKey("cors_rules", dict[web.AbstractResource, Rule])


async def preflight(request: web.Request) -> web.StreamResponse:
    """A preflight: 204; the headers come from :func:`write_headers`."""
    return web.Response(status=204)


def add(
    app: web.Application,
    path: str,
    handlers: Mapping[str, Handler],
    headers: tuple[str, ...] = (),
    expose: tuple[str, ...] = (),
    options: Handler = preflight,
) -> web.Resource:
    """Route ``path``: ``handlers`` by method (GET also answers HEAD) and an OPTIONS
    preflight (``options``: WHEP's adds its Link headers); the rule is kept for replies."""
    rules = app.setdefault(RULES, {})
    resource = app.router.add_resource(path)
    methods = []
    for method, handler in handlers.items():
        resource.add_route(method, handler)
        methods.append(method)
        if method == "GET":
            resource.add_route("HEAD", handler)
            methods.append("HEAD")
    resource.add_route("OPTIONS", options)
    methods.append("OPTIONS")
    rules[resource] = Rule(tuple(methods), headers, expose)
    return resource


async def write_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the CORS headers of the route that answered, or only the
    origin for a path no route serves (its 404 must still be readable by the page)."""
    response.headers["Access-Control-Allow-Origin"] = "*"
    resource = request.match_info.route.resource
    rule = request.app.get(RULES, {}).get(resource) if resource is not None else None
    if rule is None:
        return
    response.headers["Access-Control-Allow-Methods"] = ", ".join(rule.methods)
    if rule.headers:
        response.headers["Access-Control-Allow-Headers"] = ", ".join(rule.headers)
    if rule.expose:
        response.headers["Access-Control-Expose-Headers"] = ", ".join(rule.expose)
