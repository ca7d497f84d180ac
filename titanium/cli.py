"""``titaniumctl``: run Titanium, ask how it is doing, check a config (the control
socket's commands are in remote.py, the token commands in tokencli.py, the Mirage
proxy's in miragecli.py)."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from typing import Any

import click

from titanium.common.config import Config, ConfigError, config_to_json, load_config


def _load(path: str | None) -> Config:
    try:
        return load_config(path)
    except ConfigError as e:
        click.echo(f"titaniumctl: bad config: {e}", err=True)
        sys.exit(2)


def _disabled(config: Config) -> bool:
    """Say so when the config turns Titanium off (``titanium.enabled: false``)."""
    if config.enabled:
        return False
    click.echo(
        f"Titanium is disabled in this config ({config.source}: titanium.enabled is false); "
        "no service is started"
    )
    return True


@click.group()
@click.version_option(package_name="titanium")
def main() -> None:
    """Titanium: camera streaming for 3D printers."""


@main.command()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    help="Config file (JSON). Without it: the first camera, else the test pattern.",
)
def up(config_path: str | None) -> None:
    """Run every Titanium service in the foreground; Ctrl-C stops them all."""
    from titanium.up import run_up

    config = _load(config_path)
    if _disabled(config):
        return
    sys.exit(run_up(config))


@main.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the raw /status document.")
def status(config_path: str | None, as_json: bool) -> None:
    """How each camera and service is doing (from the running front door)."""
    config = _load(config_path)
    if _disabled(config):
        return
    url = config.http.listen.local().http_url("/status")
    try:
        with urllib.request.urlopen(url, timeout=3) as res:
            doc: dict[str, Any] = json.load(res)
    except (urllib.error.URLError, OSError) as e:
        click.echo(f"titaniumctl: Titanium is not answering at {url}: {e}", err=True)
        sys.exit(1)
    if as_json:
        click.echo(json.dumps(doc, indent=2))
        return
    for cam_id, cam in doc["cameras"].items():
        state = "online" if cam["online"] else f"OFFLINE {cam['error']}".strip()
        click.echo(
            f"camera {cam_id}: {cam['source']} {cam['format']} {cam['width']}x{cam['height']} "
            f"{cam['fps_measured']}/{cam['fps_configured']} fps, {cam['viewers']} viewers, "
            f"{cam['frames_dropped']} dropped, {state}"
        )
    for name, svc in doc["services"].items():
        line = f"service {name}: {svc['state']} (pid {svc['pid']}, up {svc['uptime']} s)"
        click.echo(line + (f", {svc['detail']}" if svc.get("detail") else ""))
    from titanium.remote import governor_lines

    for line in governor_lines(doc.get("governor") or {"error": "not in /status"}):
        click.echo(line)


@main.group()
def config() -> None:
    """Check or show a config."""


@config.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
def config_check(path: str) -> None:
    """Validate PATH: exit 0 when good, 2 with the key path when not."""
    cfg = _load(path)
    cams = ", ".join(f"{c.id} ({c.device} {c.resolution}@{c.fps})" for c in cfg.cameras)
    click.echo(f"{path}: OK — cameras: {cams}; http {cfg.http.listen}")
    if cfg.mirage.turn_servers:
        # aiortc uses one TURN URL only: say which, asking the servers now (bounded).
        import asyncio

        from titanium.services.webrtc.turnprobe import choose

        url, why = asyncio.run(choose(cfg.mirage.turn_servers, fresh=True))
        if url is None:
            click.echo(f"TURN: none of the configured URLs answered: {why}")
        else:
            click.echo(f"TURN: {url} will be used ({why})")
    why_not = cfg.dial_out
    if why_not is None:
        link = cfg.mirage_link
        click.echo(f"remote viewing: dials {link.url} as device {link.device_id}")
    else:
        click.echo(f"remote viewing: no dial-out ({why_not})")


@config.command("show")
@click.argument("path", type=click.Path(dir_okay=False), required=False)
def config_show(path: str | None) -> None:
    """Print the config with every default filled in."""
    click.echo(json.dumps(config_to_json(_load(path)), indent=2))


@main.command()
def cameras() -> None:
    """List the V4L2 cameras on this machine."""
    from titanium.common.discover import list_cameras

    found = list_cameras()
    if not found:
        click.echo("no V4L2 capture devices found; Titanium will use the test pattern")
    for cam in found:
        click.echo(f"{cam['path']}: {cam.get('card', '')} ({cam.get('driver', '')})")


from titanium import miragecli, remote, tokencli  # noqa: E402 - the commands need `main` and `_load`

remote.register(main, _load)
tokencli.register(main, _load)
miragecli.register(main)

if __name__ == "__main__":
    main()
