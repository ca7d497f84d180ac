"""``titaniumctl up``: supervisord in the foreground with every service, the URL to open,
and a clean stop that leaves no process, socket or shared-memory segment behind."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

import click

from titanium.common.address import reachable
from titanium.common.config import Config, config_to_json
from titanium.common.endpoints import Endpoints
from titanium.common.ring import SHM_DIR

READY_TIMEOUT = 30.0
STOP_TIMEOUT = 30.0
NUDGE_PERIOD = 0.1


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


def _status(config: Config) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(config.http.listen.local().http_url("/status"), timeout=1) as r:
            doc: dict[str, Any] = json.load(r)
            return doc
    except (OSError, ValueError):
        return None


def _wait_ready(config: Config, proc: subprocess.Popen[bytes]) -> dict[str, Any] | None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline and proc.poll() is None:
        doc = _status(config)
        if doc and all(s["state"] == "running" for s in doc["services"].values()):
            return doc
        time.sleep(0.2)
    return None


# supervisord's warnings about running as root and its owner-only (chmod 0700) control
# socket, which are expected here and alarm nobody who can act on them.
QUIET = (b"Supervisor is running as root", b"running without any HTTP authentication")


def _relay(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stdout is not None
    out = sys.stdout.buffer
    for line in proc.stdout:
        if not any(q in line for q in QUIET):
            out.write(line)
            out.flush()


def _clean(endpoints: Endpoints) -> list[str]:
    """Remove what dead services left behind (a SIGKILLed producer cannot unlink its
    segment); returns what had to be removed, which a clean stop leaves empty."""
    left = [str(p) for p in SHM_DIR.glob(endpoints.shm_glob())]
    left += [str(p) for p in endpoints.ipc_files()]
    for path in left:
        Path(path).unlink(missing_ok=True)
    return left


def _nudge(sock: Path, proc: subprocess.Popen[bytes], stopping: threading.Event) -> None:
    """Once a stop is asked for, connect to supervisord's socket every NUDGE_PERIOD until
    it exits. supervisord handles signals and reaps children only when its poll loop
    wakes, which with quiet services is once a second: unnudged, noticing the SIGTERM
    and then the last service's exit could each add up to a second to the stop."""
    stopping.wait()
    while proc.poll() is None:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(NUDGE_PERIOD)
            try:
                s.connect(str(sock))
            except OSError:
                pass  # not listening (yet, or any more): the wait below still ends
        time.sleep(NUDGE_PERIOD)


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
    proc = subprocess.Popen(
        [sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(conf)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # Ctrl-C reaches us; we stop supervisord in order
    )
    # Services log to supervisord's stdout; supervisord reopens /dev/stdout per program,
    # which clobbers a redirected file. A pipe relayed here keeps every line intact.
    relay = threading.Thread(target=_relay, args=(proc,), daemon=True)
    relay.start()
    stop_requested = False
    stopping = threading.Event()
    nudger = threading.Thread(
        target=_nudge, args=(endpoints.supervisor_socket, proc, stopping), daemon=True
    )
    nudger.start()

    def stop(signum: int, _frame: object) -> None:
        nonlocal stop_requested
        stop_requested = True
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        stopping.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    doc = _wait_ready(config, proc)
    if doc is not None:
        for cam_id, cam in doc["cameras"].items():
            click.echo(
                f"camera {cam_id}: {cam['device']} {cam['width']}x{cam['height']} "
                f"@ {cam['fps_configured']} fps"
            )
        click.echo("Titanium is streaming. Open " + "  or  ".join(_urls(config)), err=False)
        sys.stdout.flush()
    elif proc.poll() is None and not stop_requested:
        click.echo(
            "titaniumctl: services did not come up within "
            f"{READY_TIMEOUT:.0f} s; see the log above",
            err=True,
        )
    try:
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    relay.join(timeout=2)
    left = _clean(endpoints)
    resolved.unlink(missing_ok=True)
    if left:
        click.echo(f"titaniumctl: removed what stopped services left: {', '.join(left)}", err=True)
    return 0 if stop_requested else (proc.returncode or 1)
