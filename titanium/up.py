"""``titaniumctl up``: checks and prepares, then becomes supervisord in the foreground
(titanium/supervise.py), which prints the URL to open once ready and on a stop leaves no
process, socket or shared-memory segment behind."""

from __future__ import annotations

import json
import os
import socket
import sys
from importlib import resources
from pathlib import Path

import click

from titanium.common.address import reachable
from titanium.common.config import Config, config_to_json
from titanium.common.endpoints import Endpoints
from titanium.common.ring import SHM_DIR


def _port_free(host: str, port: int) -> str | None:
    """None when ``host:port`` can be bound, else why not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as e:
            return e.strerror or str(e)
    return None


def _urls(config: Config) -> list[str]:
    return [a.http_url() for a in reachable(config.http.listen)]


def _clean(endpoints: Endpoints) -> list[str]:
    """Remove what dead services left behind (a SIGKILLed producer cannot unlink its
    segment); returns what had to be removed, which a clean stop leaves empty."""
    left = [str(p) for p in SHM_DIR.glob(endpoints.shm_glob())]
    left += [str(p) for p in endpoints.ipc_files()]
    for path in left:
        Path(path).unlink(missing_ok=True)
    return left


def run_up(config: Config) -> int:
    endpoints = Endpoints(config.runtime_dir)
    config.runtime_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:  # the governor's control socket in it is owner-only: so is the directory
        config.runtime_dir.chmod(0o700)
    except OSError as e:
        click.echo(f"titaniumctl: cannot make {config.runtime_dir} private: {e.strerror}", err=True)
    busy = _port_free(config.http.listen.host, config.http.listen.port)
    if busy:
        click.echo(
            f"titaniumctl: cannot listen on {config.http.listen}: {busy} "
            "(set titanium.http.listen to another address)",
            err=True,
        )
        return 1
    pidfile = config.runtime_dir / "supervisord.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text().strip()), 0)
            click.echo(
                f"titaniumctl: Titanium is already running from {config.runtime_dir}", err=True
            )
            return 1
        except (ValueError, ProcessLookupError):
            pidfile.unlink(missing_ok=True)
    _clean(endpoints)
    resolved = config.runtime_dir / "config.json"
    resolved.write_text(json.dumps(config_to_json(config), indent=2))
    conf = resources.files("titanium.deploy").joinpath("supervisord.conf")
    env = dict(os.environ)
    env.update(
        TITANIUM_PYTHON=sys.executable,
        TITANIUM_CONFIG=str(resolved),
        TITANIUM_RUNTIME_DIR=str(config.runtime_dir),
        TITANIUM_CAMERAS=str(len(config.cameras)),
        TITANIUM_MIRAGE="1" if config.dial_out is None else "0",
        PYTHONUNBUFFERED="1",
    )
    env.update(
        TITANIUM_STATUS_URL=config.http.listen.local().http_url("/status"),
        TITANIUM_URLS="  or  ".join(_urls(config)),
        TITANIUM_SHM_GLOB=str(SHM_DIR / endpoints.shm_glob()),
    )
    sys.stdout.flush()
    sys.stderr.flush()
    # Become supervisord (same PID) rather than wait beside it: see titanium/supervise.py.
    argv = [sys.executable, "-m", "titanium.supervise", "-n", "-c", str(conf)]
    os.execve(sys.executable, argv, env)
