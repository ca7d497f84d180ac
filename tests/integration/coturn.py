"""Debian's coturn (``turnserver``) as the tests run it, in one place: its command line, the
wait until it answers, its log for failure messages, and the one-namespace setup (a veth
pair to the root namespace) that the STUN and TURN-fallback tests put it in.

The command never reads /etc/turnserver.conf (``-n``), runs no CLI, TLS or DTLS, and keeps
its log, pid file and user database in the test's temporary folder."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from tests.integration.stun import wait_for_binding
from tests.stack import terminate

Auth = Literal["secret", "user", "stun"]


def command(
    tmp: Path,
    ip: str,
    port: int,
    auth: Auth,
    *,
    secret: str = "",
    user: str = "",
    realm: str = "titanium.test",
    loopback_peers: bool = False,
) -> list[str]:
    """turnserver's argv: ``auth`` is coturn's REST scheme with ``secret``
    (``use-auth-secret``, what Mirage mints for), one static ``user`` ("name:password",
    long-term credentials) or STUN only."""
    args = ["turnserver", "-n", "--no-cli", "--no-tls", "--no-dtls"]
    args += [f"--listening-ip={ip}", f"--listening-port={port}"]
    if auth == "stun":
        args.append("--stun-only")
    else:
        args += [f"--relay-ip={ip}", f"--realm={realm}", "--no-multicast-peers"]
        args += [f"--userdb={tmp / 'turndb'}"]
        if auth == "secret":
            args += ["--use-auth-secret", f"--static-auth-secret={secret}"]
        else:
            args += ["--lt-cred-mech", f"--user={user}"]
    if loopback_peers:  # both peers on 127.0.0.1; production configs must not have this
        args.append("--allow-loopback-peers")
    args += [f"--pidfile={tmp / 'turnserver.pid'}", f"--log-file={log_path(tmp)}"]
    args += ["--simple-log", "--no-stdout-log"]
    return args


def log_path(tmp: Path) -> Path:
    return tmp / "turnserver.log"


def tail(tmp: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log_path(tmp).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no coturn log)"


def wait_answering(proc: subprocess.Popen[bytes], tmp: Path, ip: str, port: int) -> None:
    """Until coturn answers a STUN Binding on ``ip:port`` (from this thread's namespace);
    AssertionError with its log's tail if it exits or does not answer in time."""

    def gone() -> str | None:
        return None if proc.poll() is None else f"turnserver exited {proc.returncode}"

    try:
        wait_for_binding(ip, port, gone)
    except AssertionError as e:
        raise AssertionError(f"{e}:\n{tail(tmp)}") from None


class VethNamespace:
    """A network namespace joined to the root one by a veth /30: ``local`` is the root end,
    ``server`` the namespace's, which routes back through ``local``, so anything on this
    machine reaches ``server`` and is answered. ``subnet`` picks 10.``subnet``.N.0/30, N from
    the pid, so parallel runs do not collide. :meth:`close` deletes both."""

    def __init__(self, name: str, subnet: int) -> None:
        pid = os.getpid()
        n = pid % 250 + 1
        self.netns = f"ti-{name}-{pid}"
        self.veth = f"t{name[:2]}r{pid % 100000}"
        peer = f"t{name[:2]}n{pid % 100000}"
        self.local, self.server = f"10.{subnet}.{n}.1", f"10.{subnet}.{n}.2"
        self.exec = ["ip", "netns", "exec", self.netns]
        try:
            for cmd in (
                ["ip", "netns", "add", self.netns],
                ["ip", "link", "add", self.veth, "type", "veth", "peer", "name", peer],
                ["ip", "link", "set", peer, "netns", self.netns],
                ["ip", "addr", "add", f"{self.local}/30", "dev", self.veth],
                ["ip", "link", "set", self.veth, "up"],
                [*self.exec, "ip", "addr", "add", f"{self.server}/30", "dev", peer],
                [*self.exec, "ip", "link", "set", peer, "up"],
                [*self.exec, "ip", "link", "set", "lo", "up"],
                [*self.exec, "ip", "route", "add", "default", "via", self.local],
            ):
                subprocess.run(cmd, check=True, capture_output=True)
        except BaseException:
            self.close()
            raise

    def popen(self, argv: Sequence[str]) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [*self.exec, *argv], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def close(self) -> None:
        # Deleting the namespace deletes its nftables tables and its end of the veth pair.
        subprocess.run(["ip", "netns", "del", self.netns], capture_output=True)
        subprocess.run(["ip", "link", "del", self.veth], capture_output=True)


def stop(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None:
        terminate(proc, 5)
