"""``titaniumctl`` commands that talk to the running governor's control socket: pause,
resume, quality, print-state and events. Each is one request on the socket, the same
one Hydrogen sends (services/governor/control.py documents them)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from typing import Any

import click
import zmq
import zmq.asyncio

from titanium.common.bus import Subscriber
from titanium.common.config import Config
from titanium.common.endpoints import Endpoints, ipc_path
from titanium.common.messages import GovernorEvent
from titanium.common.rpc import RpcClient, RpcError

CALL_TIMEOUT = 5.0


def call(config: Config, cmd: str, **args: Any) -> Any:
    """One command's result; exits 1 when Titanium is not answering, 2 on an error reply."""
    endpoint = Endpoints(config.runtime_dir).governor_rpc()
    path = ipc_path(endpoint)
    if path is not None and not path.exists():
        click.echo(f"titaniumctl: no control socket at {path}: is Titanium running?", err=True)
        sys.exit(1)

    async def ask() -> Any:
        ctx = zmq.asyncio.Context()
        client = RpcClient(ctx, endpoint)
        try:
            return await client.call(cmd, timeout=CALL_TIMEOUT, **args)
        finally:
            client.close()
            ctx.term()

    try:
        return asyncio.run(ask())
    except RpcError as e:
        click.echo(f"titaniumctl: {cmd}: {e.message}", err=True)
        sys.exit(1 if e.code == "timeout" else 2)


def show_cameras(result: dict[str, Any]) -> None:
    for cam, st in result["cameras"].items():
        click.echo(camera_line(cam, st))


def camera_line(cam: str, st: dict[str, Any]) -> str:
    where = "paused" if st.get("paused") else f"{st.get('width')}x{st.get('height')}"
    line = f"camera {cam}: {st.get('rung')} ({where}, {st.get('mode')}): {st.get('reason')}"
    limits = st.get("limits") or []
    return line + (f"; held by: {', '.join(limits)}" if limits else "")


def governor_lines(gov: dict[str, Any]) -> list[str]:
    """The governor block of /status, for ``titaniumctl status``."""
    if "error" in gov:
        return [f"governor: {gov['error']}"]
    r = gov["readings"]
    temp = r["temperature"]
    lines = [
        f"governor: print protection {'on' if gov['protection'] else 'OFF'}; cpu {r['cpu']} %, "
        f"{r['memory']['available_mb']} MB free"
        + (f", {temp['sensor']} {temp['celsius']} °C" if temp["celsius"] is not None else ""),
        "governor: " + "; ".join(gov["conditions"]),  # the printer's state comes first
    ]
    lines += ["governor " + camera_line(c, st) for c, st in gov["cameras"].items()]
    adm = gov.get("admission") or {}
    if adm:
        lines.append(f"governor: serving {adm['min_priority']}-priority viewers and up")
    return lines


def register(main: click.Group, load: Callable[[str | None], Config]) -> None:
    config_opt = click.option("--config", "config_path", type=click.Path(dir_okay=False))

    @main.command()
    @click.argument("camera", required=False)
    @config_opt
    def pause(camera: str | None, config_path: str | None) -> None:
        """Pause CAMERA (every camera without it); viewers see a "paused" frame."""
        args = {"camera": camera} if camera else {}
        show_cameras(call(load(config_path), "stream.pause", by="titaniumctl", **args))

    @main.command()
    @click.argument("camera", required=False)
    @config_opt
    def resume(camera: str | None, config_path: str | None) -> None:
        """End a pause of CAMERA (every camera without it)."""
        args = {"camera": camera} if camera else {}
        show_cameras(call(load(config_path), "stream.resume", **args))

    @main.group()
    def quality() -> None:
        """Show or set the quality rung of each camera."""

    @quality.command("set")
    @click.argument("camera")
    @click.argument("rung")
    @config_opt
    def quality_set(camera: str, rung: str, config_path: str | None) -> None:
        """Make RUNG (e.g. 720p15, see `quality list`) the best CAMERA gets; `auto` ends it."""
        config = load(config_path)
        if rung == "auto":
            show_cameras(call(config, "quality.auto", camera=camera))
        else:
            show_cameras(call(config, "quality.set", camera=camera, rung=rung))

    @quality.command("list")
    @config_opt
    def quality_list(config_path: str | None) -> None:
        """Each camera's ladder, its rung now and its viewers."""
        for cam in call(load(config_path), "cameras.list"):
            ladder = " > ".join(r["rung"] for r in cam["ladder"])
            click.echo(
                f"camera {cam['id']} ({cam['priority']} priority, {cam['mode']}): "
                f"{cam['rung']} of {ladder}"
            )

    @main.command("print-state")
    @click.argument("state", type=click.Choice(["printing", "paused", "idle"]))
    @click.option("--layer", type=click.IntRange(min=0), help="Layer being printed (1 = first).")
    @click.option("--first-layer/--not-first-layer", default=None, help="Override the layer.")
    @click.option("--progress", type=click.FloatRange(0, 1), help="Progress from 0 to 1.")
    @config_opt
    def print_state(
        state: str,
        layer: int | None,
        first_layer: bool | None,
        progress: float | None,
        config_path: str | None,
    ) -> None:
        """Tell the governor what the printer does, as Hydrogen does."""
        args: dict[str, Any] = {"state": state}
        for key, value in (("layer", layer), ("first_layer", first_layer), ("progress", progress)):
            if value is not None:
                args[key] = value
        printer = call(load(config_path), "print.state", **args)["printer"]
        click.echo(
            f"printer {printer['state']}"
            + (" (first layer)" if printer["first_layer"] else "")
            + (f", layer {printer['layer']}" if printer["layer"] is not None else "")
        )

    @main.command()
    @click.option("--count", type=int, default=0, help="Stop after this many events.")
    @config_opt
    def events(count: int, config_path: str | None) -> None:
        """Print the governor's events as JSON lines, as they happen."""
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        endpoint = Endpoints(load(config_path).runtime_dir).governor_pub()
        sub = Subscriber(ctx, [endpoint], (GovernorEvent,))
        seen = 0
        try:
            while not count or seen < count:
                sub.socket.poll()  # until something arrives; Ctrl-C ends the wait
                for ev in sub.drain():
                    click.echo(json.dumps(ev.__dict__), nl=True)
                    sys.stdout.flush()
                    seen += 1
                    if seen == count:
                        break
        except KeyboardInterrupt:
            pass
        finally:
            sub.close()
            ctx.term()
