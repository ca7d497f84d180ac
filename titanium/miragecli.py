"""``titaniumctl mirage serve|add-device|remove-device|list-devices|token|revoke``: the Mirage
proxy, its device registry and its viewer tokens, run on the proxy's host with the proxy's own
config (mirage/config.py).

These commands work whether the proxy runs or not: they write the SQLite databases in its
state directory, and a running proxy cuts off a removed device, and ends the sessions of a
revoked token, within 2 s (mirage/server.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import NoReturn

import click

from titanium.mirage.config import ConfigError, ProxyConfig, load_proxy_config


def _fail(message: str) -> NoReturn:
    click.echo(f"titaniumctl: {message}", err=True)
    sys.exit(2)


def _load(path: str) -> ProxyConfig:
    try:
        return load_proxy_config(path)
    except ConfigError as e:
        _fail(f"bad proxy config: {e}")


def register(main: click.Group) -> None:
    config_opt = click.option(
        "--config",
        "config_path",
        required=True,
        type=click.Path(dir_okay=False),
        help="The proxy's config file (JSON): listen, tls, state_dir, turn.",
    )

    @main.group()
    def mirage() -> None:
        """The Mirage proxy (remote viewing): serve it and manage the devices that dial in."""

    @mirage.command()
    @config_opt
    def serve(config_path: str) -> None:
        """Run the proxy in the foreground until SIGTERM or Ctrl-C."""
        config = _load(config_path)
        from titanium.mirage.server import serve as run

        logging.basicConfig(
            level=logging.INFO, stream=sys.stdout, format="%(asctime)s %(name)s %(message)s"
        )
        try:
            asyncio.run(run(config))
        except OSError as e:
            _fail(f"cannot listen on {config.listen}: {e.strerror or e}")

    @mirage.command("add-device")
    @click.argument("name")
    @config_opt
    def add_device(name: str, config_path: str) -> None:
        """Register a printer; print its id and secret (shown this once only)."""
        from titanium.mirage.devices import Devices

        try:
            device, secret = Devices(_load(config_path).state_dir).add(name)
        except ValueError as e:
            _fail(f"NAME: {e}")
        click.echo(f"id:     {device.id}")
        click.echo(f"secret: {secret}")
        click.echo(f"name:   {device.name}")
        click.echo(
            "The secret cannot be shown again (only its hash is kept): put it in the "
            "printer's config now."
        )

    @mirage.command("remove-device")
    @click.argument("device_id", metavar="ID")
    @config_opt
    def remove_device(device_id: str, config_path: str) -> None:
        """Forget a device; a running proxy cuts it off within 2 s."""
        from titanium.mirage.devices import Devices

        if not Devices(_load(config_path).state_dir).remove(device_id):
            _fail(f"no device with id {device_id!r} (see `titaniumctl mirage list-devices`)")
        click.echo(f"removed {device_id}")

    @mirage.command("list-devices")
    @config_opt
    @click.option("--json", "as_json", is_flag=True, help="Print JSON, for machines.")
    def list_devices(config_path: str, as_json: bool) -> None:
        """Every registered device: id, name, when it was added."""
        from titanium.mirage.devices import Devices

        devices = Devices(_load(config_path).state_dir).list()
        if as_json:
            click.echo(json.dumps([d.__dict__ for d in devices]))
            return
        if not devices:
            click.echo("no devices registered")
        for d in devices:
            added = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(d.added))
            click.echo(f"{d.id}  {d.name}  added {added}")

    @mirage.command("token")
    @click.option(
        "--device", "devices", multiple=True, required=True, help="A device id it may reach."
    )
    @click.option("--camera", "cameras", multiple=True, help="A camera it may see (default: all).")
    @click.option("--ttl", default="1h", show_default=True, help="Lifetime: 30d, 12h, 45m, 90s.")
    @click.option("--name", default="remote viewer", show_default=True, help="Who holds it.")
    @config_opt
    def token(
        devices: tuple[str, ...],
        cameras: tuple[str, ...],
        ttl: str,
        name: str,
        config_path: str,
    ) -> None:
        """Mint a viewer token for these devices; print it (shown this once only)."""
        from titanium.common.tokens import Tokens, parse_ttl
        from titanium.mirage.devices import Devices

        config = _load(config_path)
        try:
            seconds = parse_ttl(ttl)
        except ValueError as e:
            _fail(f"--ttl: {e}")
        known = Devices(config.state_dir).ids()
        unknown = [d for d in devices if d not in known]
        if unknown:
            _fail(f"no device with id {unknown[0]!r} (see `titaniumctl mirage list-devices`)")
        secret, grant = Tokens(config.state_dir).create(
            name, cameras, "view", seconds, devices=devices
        )
        expires = time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(grant.expires))
        click.echo(f"token:   {secret}")
        click.echo(f"id:      {grant.id} (for `titaniumctl mirage revoke`)")
        click.echo(f"devices: {', '.join(grant.devices)}")
        click.echo(f"cameras: {', '.join(grant.cameras) or 'all'}")
        click.echo(f"expires: {expires}")

    @mirage.command("revoke")
    @click.argument("token_id", metavar="ID")
    @config_opt
    def revoke(token_id: str, config_path: str) -> None:
        """Revoke a viewer token; a running proxy ends its live sessions within 2 s."""
        from titanium.common.tokens import Tokens

        if not Tokens(_load(config_path).state_dir).revoke(token_id):
            _fail(f"no token with id {token_id!r} was issued by this proxy")
        click.echo(f"revoked {token_id}")
