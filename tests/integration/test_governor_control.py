"""The governor's control socket, on the governor process alone: owner-only, every command
as documented, error replies for garbage and well-formed-but-wrong requests (and still
answering), TCP only when configured, and titaniumctl's matching commands."""

from __future__ import annotations

import json
import random
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import psutil
import pytest
import zmq

from tests.integration.conftest import TITANIUMCTL, free_port
from tests.integration.governor_client import GovernorProcess, call
from titanium.common.rpc import RpcError
from titanium.common.tokens import TokenError, Tokens

CAMERAS = [
    {"id": "bed", "device": "testpattern", "resolution": "1920x1080"},
    {"id": "nozzle", "device": "testpattern", "resolution": "640x480", "priority": "high"},
]


@pytest.fixture
def governor(tmp_path: Path) -> Iterator[GovernorProcess]:
    (tmp_path / "run").mkdir(mode=0o755)
    (tmp_path / "run").chmod(0o755)  # as a careless admin left it
    gov = GovernorProcess(tmp_path, {"sample_interval": 0.2}, CAMERAS)
    yield gov
    assert gov.stop() == 0, gov.log()


def test_socket_and_directory_are_owner_only(governor: GovernorProcess) -> None:
    run = governor.endpoints.runtime_dir
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    for name in ("governor.rpc", "governor.pub"):
        assert stat.S_IMODE((run / name).stat().st_mode) == 0o600, name


def test_commands_answer_as_documented(governor: GovernorProcess) -> None:
    listed = governor.call("cameras.list")
    assert [c["id"] for c in listed] == ["bed", "nozzle"]
    bed = listed[0]
    assert [r["rung"] for r in bed["ladder"]] == [
        "1080p30", "720p30", "720p15", "480p15", "360p5", "paused"
    ]  # fmt: skip
    assert (bed["rung"], bed["mode"], bed["priority"]) == ("1080p30", "auto", "medium")

    printer = governor.call("print.state", state="printing", layer=1)["printer"]
    assert (printer["state"], printer["first_layer"], printer["source"]) == (
        "printing",
        True,
        "hydrogen",
    )
    cams = governor.call("status")["cameras"]
    assert cams["bed"]["rung"] == "480p15" and cams["bed"]["reason"] == "first layer"

    got = governor.call("stream.pause", camera="nozzle", by="hydrogen")["cameras"]
    assert list(got) == ["nozzle"] and got["nozzle"]["paused"]
    assert got["nozzle"]["reason"] == "paused by hydrogen"
    got = governor.call("stream.resume", camera="nozzle")["cameras"]
    assert not got["nozzle"]["paused"]

    governor.call("print.state", state="idle")
    got = governor.call("quality.set", camera="bed", rung="720p15")["cameras"]["bed"]
    assert (got["rung"], got["width"], got["height"], got["mode"]) == (
        "720p15",
        1280,
        720,
        "manual",
    )
    got = governor.call("quality.auto", camera="bed")["cameras"]["bed"]
    assert got["mode"] == "auto"

    everything = governor.call("stream.pause")["cameras"]
    assert sorted(everything) == ["bed", "nozzle"] and all(c["paused"] for c in everything.values())
    doc = governor.call("status")
    assert set(doc) >= {"protection", "printer", "readings", "cameras", "admission", "actuation"}
    deadline = time.monotonic() + 5
    while doc["readings"]["cpu"] is None and time.monotonic() < deadline:  # two samples
        time.sleep(0.1)
        doc = governor.call("status")
    assert doc["readings"]["cpu"] is not None and doc["readings"]["memory"]["available_mb"] > 0


def _raw(sock: zmq.Socket[bytes], *frames: bytes) -> dict[str, Any]:
    sock.send_multipart(list(frames))
    assert sock.poll(5000), "no reply"
    reply: dict[str, Any] = msgpack.unpackb(sock.recv())
    return reply


def _req(cmd: Any, args: Any = None, **extra: Any) -> bytes:
    return msgpack.packb({"id": 7, "cmd": cmd, "args": args, **extra})


GARBAGE = [
    ((b"\xc1\xc1\xc1",), "bad_request"),
    ((random.Random(4).randbytes(4096),), "bad_request"),
    ((msgpack.packb([1, 2, 3]),), "bad_request"),
    ((msgpack.packb({"id": 1}),), "bad_request"),
    ((_req(5),), "bad_request"),
    ((_req("status", [1]),), "bad_request"),
    ((b"a", b"b"), "bad_request"),
    ((_req("reboot"),), "unknown_command"),
    ((_req("print.state", {"state": 5}),), "bad_args"),
    ((_req("print.state", {"state": "flying"}),), "bad_args"),
    ((_req("print.state", {"state": "printing", "layer": "one"}),), "bad_args"),
    ((_req("print.state", {"state": "printing", "layer": True}),), "bad_args"),
    ((_req("print.state", {"state": "printing", "progress": 7}),), "bad_args"),
    ((_req("print.state", {}),), "bad_args"),
    ((_req("quality.set", {"camera": "bed"}),), "bad_args"),
    ((_req("quality.set", {"camera": "bed", "rung": "4k60"}),), "not_found"),
    ((_req("quality.set", {"camera": "bed", "rung": "paused"}),), "bad_args"),
    ((_req("quality.set", {"camera": "garage", "rung": "720p15"}),), "not_found"),
    ((_req("stream.pause", {"camera": 3}),), "bad_args"),
    ((_req("quality.auto", {"camera": ["bed"]}),), "bad_args"),
    ((_req("token.create", {}),), "bad_args"),
    ((_req("token.create", {"name": 3}),), "bad_args"),
    ((_req("token.create", {"name": "x", "cameras": "bed"}),), "bad_args"),
    ((_req("token.create", {"name": "x", "rights": "root"}),), "bad_args"),
    ((_req("token.create", {"name": "x", "ttl": True}),), "bad_args"),
    ((_req("token.revoke", {}),), "bad_args"),
    ((_req("token.revoke", {"id": 12}),), "bad_args"),
]


def test_garbage_and_wrong_requests_get_error_replies_and_status_still_answers(
    governor: GovernorProcess,
) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(governor.rpc)
    try:
        for frames, code in GARBAGE * 3:
            reply = _raw(sock, *frames)
            assert reply["ok"] is False and reply["error"]["code"] == code, (frames, reply)
            assert reply["error"]["message"]
        assert _raw(sock, _req("status"))["ok"] is True
    finally:
        sock.close()
        ctx.term()
    assert governor.call("cameras.list")[0]["id"] == "bed"
    assert governor.proc.poll() is None


def test_a_100_mb_request_is_refused_unread_and_the_governor_keeps_serving(
    governor: GovernorProcess,
) -> None:
    """Pins: libzmq read a frame of any size in full and msgpack unpacked it, so one local
    client could make the governor allocate what it sent (twice) and answer it. Now past
    rpc.MAX_REQUEST the connection is dropped unread: the client is told 'disconnected'."""
    proc = psutil.Process(governor.proc.pid)
    before = proc.memory_info().rss
    peak = [before]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.01):
            peak[0] = max(peak[0], proc.memory_info().rss)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        with pytest.raises(RpcError) as e:
            governor.call("status", pad=b"x" * 100_000_000)
        assert e.value.code == "disconnected", e.value
        time.sleep(0.5)
    finally:
        done.set()
        sampler.join(2)
    assert peak[0] - before < 20_000_000, f"grew by {(peak[0] - before) / 1e6:.0f} MB"
    assert governor.call("cameras.list")[0]["id"] == "bed"
    assert governor.proc.poll() is None


@pytest.mark.parametrize(
    ("args", "names"),
    [
        ({"cameras": ["bed", "garage"]}, "argument 'cameras': no camera 'garage' in this config"),
        ({"cameras": [1]}, "argument 'cameras' must be a list of camera ids"),
        ({"rights": "root"}, "argument 'rights' must be one of view, control, admin"),
        ({"ttl": "5y"}, "argument 'ttl': a duration such as 30d"),
        ({"ttl": 10}, "argument 'ttl': a duration from 1 minute to 10 years"),
        ({"name": ""}, "argument 'name' must not be empty"),
    ],
)
def test_token_create_names_the_bad_argument(
    governor: GovernorProcess, args: dict[str, Any], names: str
) -> None:
    """Pins: a wrong token.create argument is a bad_args reply naming it, and issues nothing."""
    with pytest.raises(RpcError) as e:
        governor.call("token.create", **{"name": "hydrogen", **args})
    assert e.value.code == "bad_args" and names in e.value.message
    assert governor.call("token.list") == []


def test_token_commands_issue_list_and_revoke(governor: GovernorProcess, tmp_path: Path) -> None:
    """Pins: Hydrogen's token.create gives a token the front door's authority accepts, with
    the same URLs as the CLI's; token.list shows it and the CLI's own; token.revoke makes
    it fail as revoked and answers false for an id never issued."""
    made = governor.call("token.create", name="hydrogen", cameras=["nozzle"], ttl=3600)
    grant = Tokens(governor.state_dir).verify(made["token"])
    assert made["grant"] == grant.describe()
    assert (grant.name, grant.cameras, grant.rights) == ("hydrogen", ("nozzle",), "view")
    assert grant.expires - grant.issued == 3600
    (entry,) = made["urls"]  # one camera, the default loopback listen
    assert (entry["camera"], entry["host"]) == ("nozzle", "127.0.0.1:8080")
    t = made["token"]
    assert entry["urls"]["mjpeg_stream"] == f"http://127.0.0.1:8080/nozzle/stream?token={t}"
    assert entry["urls"]["whep"] == f"http://127.0.0.1:8080/t/{t}/nozzle/whep"

    out = ctl(tmp_path / "titanium.json", "token", "create", "--json", "--rights", "admin")
    assert out.returncode == 0, out.stderr
    from_cli = json.loads(out.stdout)
    assert [e["camera"] for e in from_cli["urls"]] == ["bed", "nozzle"]
    assert set(from_cli["urls"][1]["urls"]) == set(entry["urls"])

    listed = governor.call("token.list")
    assert {t["id"] for t in listed} == {grant.id, from_cli["grant"]["id"]}
    mine = next(t for t in listed if t["id"] == grant.id)
    assert (mine["cameras"], mine["revoked"], mine["expired"]) == (["nozzle"], None, False)
    assert "token" not in mine  # the secret is shown once, at creation

    assert governor.call("token.revoke", id=grant.id) == {"revoked": True}
    with pytest.raises(TokenError) as e:
        Tokens(governor.state_dir).verify(made["token"])
    assert e.value.code == "revoked"
    assert Tokens(governor.state_dir).verify(from_cli["token"]).rights == "admin"
    assert governor.call("token.revoke", id="0123456789abcdef") == {"revoked": False}
    revoked = next(t for t in governor.call("token.list") if t["id"] == grant.id)
    assert revoked["revoked"] is not None


def test_tcp_only_when_configured(tmp_path: Path) -> None:
    port = free_port()
    gov = GovernorProcess(tmp_path, {"control_tcp": f"127.0.0.1:{port}"})
    try:
        assert call(f"tcp://127.0.0.1:{port}", "cameras.list")[0]["id"] == "cam0"
        assert f"tcp://127.0.0.1:{port}" in gov.log()
    finally:
        gov.stop()
    (tmp_path / "again").mkdir()
    quiet = GovernorProcess(tmp_path / "again", {})
    try:
        with pytest.raises(RpcError) as e:
            call(f"tcp://127.0.0.1:{port}", "status", timeout=0.5)
        assert e.value.code == "timeout"
    finally:
        quiet.stop()


def test_print_protection_off_keeps_quality_and_leaves_scheduling_alone(tmp_path: Path) -> None:
    gov = GovernorProcess(tmp_path, {}, streaming={"print_protection": False})
    try:
        gov.call("print.state", state="printing", layer=1)
        doc = gov.call("status")
        cam = doc["cameras"]["cam0"]
        assert (cam["rung"], cam["reason"]) == ("480p30", "print protection off")
        assert doc["protection"] is False and doc["actuation"].startswith("off")
        assert doc["admission"]["min_priority"] == "low"
        paused = gov.call("stream.pause")["cameras"]["cam0"]  # by hand it still works
        assert paused["paused"] and paused["reason"] == "paused by the control socket"
    finally:
        gov.stop()


def ctl(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TITANIUMCTL, *args, "--config", str(config)], capture_output=True, text=True, timeout=30
    )


def test_titaniumctl_commands(governor: GovernorProcess, tmp_path: Path) -> None:
    config = tmp_path / "titanium.json"
    out = ctl(config, "print-state", "printing", "--layer", "1")
    assert out.returncode == 0 and "printer printing (first layer), layer 1" in out.stdout
    out = ctl(config, "quality", "list")
    assert "camera bed (medium priority, auto): 480p15 of 1080p30 > 720p30" in out.stdout
    out = ctl(config, "quality", "set", "nozzle", "240p5")
    assert out.returncode == 2 and "has no rung '240p5'" in out.stderr
    out = ctl(config, "quality", "set", "nozzle", "360p5")
    assert out.returncode == 0 and "camera nozzle: 360p5 (480x360, manual)" in out.stdout
    out = ctl(config, "pause", "bed")
    assert "camera bed: paused (paused, auto): paused by titaniumctl" in out.stdout
    out = ctl(config, "resume")
    assert out.returncode == 0 and "paused by" not in out.stdout
    assert ctl(config, "quality", "set", "nozzle", "auto").returncode == 0
    assert ctl(tmp_path / "elsewhere.json", "pause").returncode == 2  # no such config file


def test_titaniumctl_events_prints_each_event_as_a_json_line(
    governor: GovernorProcess, tmp_path: Path
) -> None:
    config = tmp_path / "titanium.json"
    follow = subprocess.Popen(
        [TITANIUMCTL, "events", "--count", "2", "--config", str(config)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        time.sleep(1.0)  # subscribed before anything happens
        governor.call("stream.pause", camera="bed", by="hydrogen")
        governor.call("stream.resume", camera="bed")
        out, _ = follow.communicate(timeout=10)
    finally:
        follow.kill()
    paused, resumed = (json.loads(line) for line in out.splitlines())
    assert (paused["event"], paused["camera"], paused["reason"]) == (
        "stream.paused",
        "bed",
        "paused by hydrogen",
    )
    assert resumed["event"] == "stream.resumed" and resumed["detail"]["rung"] == "1080p30"
