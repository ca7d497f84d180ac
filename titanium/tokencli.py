"""``titaniumctl token create|list|revoke``: access tokens, straight in the state directory.

They work whether Titanium runs or not: the token database is SQLite, which serializes its
writers, and a running front door reads revocations from it. The control socket's
``token.*`` commands (services/governor/control.py) do the same for Hydrogen.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, NoReturn

import click

from titanium.common.address import reachable
from titanium.common.config import Config
from titanium.common.tokens import RIGHTS, Grant, Tokens, parse_ttl
from titanium.common.tokenurls import DIALECTS, allowed_cameras, token_urls


def _when(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(ts))


def _fail(message: str) -> NoReturn:
    click.echo(f"titaniumctl: {message}", err=True)
    sys.exit(2)


def _grants(grant: Grant, config: Config) -> str:
    cams = ", ".join(grant.cameras) if grant.cameras else "every camera"
    if not grant.cameras:
        cams += f" ({', '.join(c.id for c in config.cameras)} now)"
    return f"{grant.rights} on {cams}"


def _show_created(token: str, grant: Grant, config: Config, urls: list[dict[str, Any]]) -> None:
    click.echo(f"token:   {token}")
    click.echo(f"id:      {grant.id} (for `titaniumctl token revoke`)")
    click.echo(f"name:    {grant.name}")
    click.echo(f"grants:  {_grants(grant, config)}")
    click.echo(f"expires: {_when(grant.expires)}")
    for entry in urls:
        click.echo(f"\ncamera {entry['camera']} at {entry['host']}:")
        for key, who, where in DIALECTS:
            click.echo(f"  {who}, {where}:\n    {entry['urls'][key]}")


def register(main: click.Group, load: Callable[[str | None], Config]) -> None:
    config_opt = click.option("--config", "config_path", type=click.Path(dir_okay=False))
    json_opt = click.option("--json", "as_json", is_flag=True, help="Print JSON, for machines.")

    @main.group()
    def token() -> None:
        """Create, list and revoke access tokens (used with `http.auth: token`)."""

    @token.command("create")
    @click.option(
        "--camera", "cameras", multiple=True, help="A camera it sees (repeat; all without)."
    )
    @click.option("--rights", type=click.Choice(RIGHTS), default="view", show_default=True)
    @click.option("--ttl", default="30d", show_default=True, help="Lifetime: 30d, 12h, 45m, 90s.")
    @click.option("--name", default="titaniumctl", show_default=True, help="Who holds it.")
    @config_opt
    @json_opt
    def create(
        cameras: tuple[str, ...],
        rights: str,
        ttl: str,
        name: str,
        config_path: str | None,
        as_json: bool,
    ) -> None:
        """Make a token; print it and the URLs to paste into Mainsail, Fluidd, OctoPrint or
        a WHEP player."""
        config = load(config_path)
        try:
            allowed_cameras(config, cameras)
        except ValueError as e:
            _fail(f"--camera: {e}")
        try:
            seconds = parse_ttl(ttl)
        except ValueError as e:
            _fail(f"--ttl: {e}")
        secret, grant = Tokens(config.state_dir).create(name, cameras, rights, seconds)
        urls = token_urls(config, secret, grant.cameras, reachable(config.http.listen))
        if as_json:
            click.echo(json.dumps({"token": secret, "grant": grant.describe(), "urls": urls}))
            return
        _show_created(secret, grant, config, urls)
        if config.http.auth != "token":
            click.echo(
                f"\nnote: http.auth is {config.http.auth!r} in {config.source}: Titanium asks "
                "for no token until it is 'token'",
                err=True,
            )

    @token.command("list")
    @config_opt
    @json_opt
    def list_(config_path: str | None, as_json: bool) -> None:
        """Every token issued: id, name, cameras, rights, expiry, and whether it still works."""
        tokens = Tokens(load(config_path).state_dir).list()
        if as_json:
            click.echo(json.dumps(tokens))
            return
        if not tokens:
            click.echo("no tokens issued")
        for t in tokens:
            state = (
                f"revoked {_when(t['revoked'])}"
                if t["revoked"] is not None
                else "expired"
                if t["expired"]
                else "valid"
            )
            cams = ",".join(t["cameras"]) or "all cameras"
            click.echo(
                f"{t['id']}  {t['name']}  {cams}  {t['rights']}  "
                f"expires {_when(t['expires'])}  {state}"
            )

    @token.command("revoke")
    @click.argument("token_id", metavar="ID")
    @config_opt
    def revoke(token_id: str, config_path: str | None) -> None:
        """Revoke the token with this ID (see `token list`); Titanium ends its sessions."""
        if not Tokens(load(config_path).state_dir).revoke(token_id):
            _fail(f"no token with id {token_id!r} (see `titaniumctl token list`)")
        click.echo(f"revoked {token_id}")
