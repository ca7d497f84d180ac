"""A remote-viewing topology in network namespaces: a printer and a viewer, each on its own
private LAN behind its own NAT router (nftables masquerade), both routers on an "internet"
namespace that holds the public addresses of the proxy and of coturn.

    printer 10.232.N.2 ─lan─ printer router ─wan 100.64.N.2─┐
                                                            internet (forwards; holds
    viewer 172.16.N.2 ──lan─ viewer router ──wan 100.64.N.6─┘   proxy_ip 100.64.N.100,
                                                                turn_ip 100.64.N.101)

Nothing is attached to the root namespace: no test traffic can leave the topology, and the
root namespace's routes are only read (``N`` is chosen so no subnet overlaps them). Every
namespace name ends in ``-<pid>``; :meth:`Nat.close` deletes them all and stops every
process the harness started, also when a test fails. The routers are stateful (forward
policy drop, established/related accepted), so unsolicited inbound traffic is dropped as on
a home router; the internet drops, silently, what is addressed to nobody it routes (a LAN's
private address, say), as the real one does; masquerade keeps source ports where it can, so
UDP hole punching works.

One topology per test module (built in ~0.2 s here; coturn is shared the same way)::

    @pytest.fixture(scope="module")
    def nat(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nat]:
        with Nat.create_or_skip() as topo:
            topo.start_coturn(tmp_path_factory.mktemp("turn"))  # when the module needs TURN
            yield topo

    @pytest.fixture(autouse=True)
    def _clean(nat: Nat) -> Iterator[None]:
        yield
        nat.reset()  # UDP allowed again, shaping removed: the next case starts clean

Then, in a test:
- ``nat.run(nat.printer, "ip", "route")`` / ``nat.popen(...)`` / ``nat.child(...)``: a
  command in a namespace (``ip netns exec``); popen/child processes are stopped at close.
- ``with inside(nat.viewer): sock = socket.socket(...)``: an in-process socket that lives in
  that namespace (tests/integration/netns.py).
- ``nat.serve_http(nat.internet, nat.proxy_ip, port, app)``: an aiohttp app in a namespace.
- ``nat.loop(nat.printer).run(coro, timeout)``: asyncio (an aiortc peer) in a namespace.
- ``nat.browser()``: headless Chromium in the viewer namespace (a :class:`Browser`).
- ``nat.coturn.ice_servers(name)``: minted TURN credentials for UDP and TCP.
- ``nat.drop_udp("between-nats")``: UDP between the two routers' public addresses is
  dropped in the internet (P2P fails, TURN over UDP still works);
  ``nat.drop_udp("viewer-all")``: the viewer router forwards no UDP at all (only TURN over
  TCP gets through). ``nat.allow_udp()`` undoes both.
- ``nat.shape(rate="1mbit", rtt_ms=80, loss_pct=1)``: both ends of the viewer's uplink
  shaped, each direction getting the rate and the loss, and half the RTT where the kernel
  has netem; ``nat.unshape()``. Without netem (this machine's kernel has no sch_netem,
  ``nat.netem_missing()`` says why) the rate is a tbf qdisc and the loss an nft ``numgen``
  rule (tests/integration/shaping.py), and there is no added delay: ``shape`` then needs
  ``rtt_ms=0`` (a test that needs the RTT skips that part with netem_missing's reason).
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from tests.integration import shaping
from tests.integration.browser import Browser, find_chromium
from tests.integration.nat_services import Coturn, NetnsHttp, NetnsLoop
from tests.integration.shaping import NETEM_MISSING_DELAY
from tests.stack import Child, terminate

UdpDrop = Literal["between-nats", "viewer-all"]
# The harness's own nft table in each router and the internet: reset() flushes only it.
SWITCH_TABLE = "ti_switch"
# Where the internet namespace's default route leads (TEST-NET-1; see _void_default_route).
VOID_DEV, VOID_GW, VOID_MAC = "void", "192.0.2.1", "02:00:00:00:00:01"
TOOLS = {"ip": "iproute2", "nft": "nftables", "tc": "iproute2", "turnserver": "coturn"}


def missing_prerequisite() -> str | None:
    """Why the topology cannot be built here, or None."""
    if os.geteuid() != 0:
        return "the NAT harness needs root to create network namespaces"
    for tool, package in TOOLS.items():
        if shutil.which(tool) is None:
            return f"the NAT harness needs `{tool}` (apt-get install {package})"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True)
    if probe.returncode != 0:
        return f"`ip netns` does not work here: {probe.stderr.decode().strip()}"
    return None


def _host_networks() -> list[ipaddress.IPv4Network]:
    out = subprocess.run(["ip", "-j", "-4", "route", "show", "table", "all"], capture_output=True)
    nets = []
    for route in json.loads(out.stdout or b"[]"):
        dst = route.get("dst", "")
        if dst and dst != "default":
            try:
                nets.append(ipaddress.ip_network(dst, strict=False))
            except ValueError:
                continue
    return [n for n in nets if isinstance(n, ipaddress.IPv4Network)]


def _pick_subnet_index() -> int:
    """An N in 1..250, starting from the pid, whose three /24s overlap no host route."""
    host = _host_networks()
    start = os.getpid() % 250
    for i in range(250):
        n = (start + i) % 250 + 1
        ours = [ipaddress.ip_network(f"{p}.{n}.0/24") for p in ("10.232", "172.16", "100.64")]
        if not any(a.overlaps(b) for a in ours for b in host):
            return n
    raise AssertionError("every 10.232.N/172.16.N/100.64.N /24 overlaps a host route")


class Nat:
    """The five namespaces and their addresses; see the module docstring."""

    def __init__(self, tag: str | None = None) -> None:
        tag = tag or str(os.getpid())
        n = _pick_subnet_index()
        self.internet = f"ti-inet-{tag}"
        self.printer_router = f"ti-prt-{tag}"
        self.viewer_router = f"ti-vrt-{tag}"
        self.printer = f"ti-p-{tag}"
        self.viewer = f"ti-v-{tag}"
        self.printer_ip, self.printer_lan_gw = f"10.232.{n}.2", f"10.232.{n}.1"
        self.viewer_ip, self.viewer_lan_gw = f"172.16.{n}.2", f"172.16.{n}.1"
        self.printer_wan, self.printer_wan_gw = f"100.64.{n}.2", f"100.64.{n}.1"
        self.viewer_wan, self.viewer_wan_gw = f"100.64.{n}.6", f"100.64.{n}.5"
        self.proxy_ip, self.turn_ip = f"100.64.{n}.100", f"100.64.{n}.101"
        self.coturn: Coturn | None = None
        self._children: list[subprocess.Popen[Any]] = []
        self._servers: list[NetnsHttp | NetnsLoop] = []
        self._browsers: list[Browser] = []
        self._netem_probed = False
        self._netem_reason: str | None = None
        self._shaped = False
        self._created: list[str] = []

    @classmethod
    def create_or_skip(cls) -> Nat:
        """A built topology, or pytest.skip with the reason it cannot be built here."""
        import pytest

        reason = missing_prerequisite()
        if reason:
            pytest.skip(reason)
        topo = cls()
        try:
            topo.build()
        except BaseException:
            topo.close()
            raise
        return topo

    @property
    def namespaces(self) -> list[str]:
        return [self.internet, self.printer_router, self.viewer_router, self.printer, self.viewer]

    # -- running things in namespaces ------------------------------------------------------

    def run(
        self, ns: str, *argv: str, check: bool = True, timeout: float = 10
    ) -> subprocess.CompletedProcess[str]:
        """``argv`` in namespace ``ns``, its output captured; raises with stderr on failure
        when ``check``."""
        done = subprocess.run(
            ["ip", "netns", "exec", ns, *argv], capture_output=True, text=True, timeout=timeout
        )
        if check and done.returncode != 0:
            raise AssertionError(
                f"in {ns}: {' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}"
            )
        return done

    def popen(self, ns: str, argv: list[str], **popen: Any) -> subprocess.Popen[Any]:
        """A process in namespace ``ns``; stopped (terminate → kill, by PID) at close."""
        proc: subprocess.Popen[Any] = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **popen)
        self._children.append(proc)
        return proc

    def child(self, ns: str, argv: list[str], **popen: Any) -> Child:
        """Like :meth:`popen`, its output kept (``.log()``) for failure messages."""
        child = Child(["ip", "netns", "exec", ns, *argv], **popen)
        self._children.append(child.proc)
        return child

    def serve_http(self, ns: str, host: str, port: int, app: Any) -> NetnsHttp:
        """An aiohttp ``web.Application`` served on ``host:port`` inside ``ns``."""
        server = NetnsHttp(ns, host, port, app)
        self._servers.append(server)
        return server

    def loop(self, ns: str) -> NetnsLoop:
        """An asyncio loop on a thread inside ``ns`` (an aiortc peer as the printer: run its
        coroutines with ``.run(coro, timeout)``); stopped at close."""
        loop = NetnsLoop(ns)
        self._servers.append(loop)
        return loop

    def browser(self, extra_args: list[str] | None = None) -> Browser:
        """Headless Chromium in the viewer namespace; closed at :meth:`close` if not before.
        Skips the test when Chromium is not installed."""
        if find_chromium() is None:
            import pytest

            pytest.skip("the remote viewer needs Debian's chromium: apt-get install chromium")
        browser = Browser.launch(extra_args=extra_args, netns=self.viewer)
        self._browsers.append(browser)
        return browser

    def start_coturn(self, tmp: Path, secret: str = "nat-test-secret-0123456789") -> Coturn:
        """coturn on ``turn_ip:3478`` (UDP and TCP), ``use-auth-secret``, relaying from the
        same public address. One per topology."""
        assert self.coturn is None, "one coturn per topology"
        self.coturn = Coturn(self, tmp, secret)
        return self.coturn

    # -- switches ------------------------------------------------------------------------

    def drop_udp(self, scope: UdpDrop) -> None:
        """Drop UDP between the NATs (``between-nats``) or all UDP the viewer router would
        forward (``viewer-all``); :meth:`allow_udp` or :meth:`reset` undoes it."""
        if scope == "between-nats":
            ends = f"{{ {self.printer_wan}, {self.viewer_wan} }}"
            rule = f"ip saddr {ends} ip daddr {ends} meta l4proto udp drop"
            self._nft(self.internet, f"add rule ip {SWITCH_TABLE} forward {rule}")
        elif scope == "viewer-all":
            rule = "meta l4proto udp drop"
            self._nft(self.viewer_router, f"add rule ip {SWITCH_TABLE} forward {rule}")
        else:
            raise ValueError(f"drop_udp scope must be between-nats or viewer-all, not {scope!r}")

    def allow_udp(self) -> None:
        for ns in (self.internet, self.viewer_router):
            self._nft(ns, f"flush chain ip {SWITCH_TABLE} forward")

    def netem_missing(self) -> str | None:
        """Why netem shaping is impossible on this kernel, or None when it works."""
        if not self._netem_probed:
            self._netem_probed = True
            done = self.run(
                self.viewer_router, "tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay",
                "1ms", check=False,
            )  # fmt: skip
            if done.returncode == 0:
                self.run(self.viewer_router, "tc", "qdisc", "del", "dev", "lo", "root")
            else:
                why = done.stderr.strip()
                self._netem_reason = f"netem qdisc unavailable (kernel sch_netem): {why}"
        return self._netem_reason

    def shape(
        self, rate: str = "1mbit", rtt_ms: float = 80, loss_pct: float = 1, limit: int = 1000
    ) -> None:
        """The viewer's uplink shaped, both directions: ``rate`` (tc syntax) and
        ``loss_pct`` % loss each way; with netem also half of ``rtt_ms`` of delay each way
        and a queue of ``limit`` packets. Without netem: tbf and nft loss (shaping.py), and
        an ``rtt_ms`` above 0 raises AssertionError with :meth:`netem_missing`'s reason."""
        self._shaped = True
        reason = self.netem_missing()
        if reason is None:
            params = [
                "rate", rate, "delay", f"{rtt_ms / 2:g}ms", "loss", f"{loss_pct:g}%",
                "limit", str(limit),
            ]  # fmt: skip
            for ns, dev in self._uplink:
                self.run(ns, "tc", "qdisc", "replace", "dev", dev, "root", "netem", *params)
            return
        if rtt_ms > 0:
            raise AssertionError(f"{NETEM_MISSING_DELAY}: {reason}")
        for ns, dev in self._uplink:
            shaping.rate(ns, dev, rate)
        # Both ways at the viewer's router, which forwards every packet of the uplink: the
        # internet's own addresses (the proxy, TURN) answer from that namespace, so there
        # their packets never pass a forward hook.
        shaping.loss(self.viewer_router, "wan", loss_pct, ["forward"])

    @property
    def _uplink(self) -> tuple[tuple[str, str], ...]:
        return ((self.viewer_router, "wan"), (self.internet, "to-viewer"))

    def unshape(self) -> None:
        for ns, dev in self._uplink:
            shaping.unshape(ns, dev)
        self._shaped = False

    def reset(self) -> None:
        """UDP allowed and shaping removed: what a module's autouse fixture calls."""
        self.allow_udp()
        if self._shaped:
            self.unshape()

    # -- building and tearing down ---------------------------------------------------------

    def build(self) -> None:
        for ns in self.namespaces:
            subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
            self._created.append(ns)
            self._ip(ns, "link set lo up")
        self._link(self.internet, "to-printer", self.printer_router, "wan")
        self._link(self.internet, "to-viewer", self.viewer_router, "wan")
        self._link(self.printer_router, "lan", self.printer, "eth0")
        self._link(self.viewer_router, "lan", self.viewer, "eth0")
        self._address(self.internet, "to-printer", f"{self.printer_wan_gw}/30")
        self._address(self.internet, "to-viewer", f"{self.viewer_wan_gw}/30")
        for public in (self.proxy_ip, self.turn_ip):
            self._address(self.internet, "lo", f"{public}/32")
        for router, wan, wan_gw, lan_gw in (
            (self.printer_router, self.printer_wan, self.printer_wan_gw, self.printer_lan_gw),
            (self.viewer_router, self.viewer_wan, self.viewer_wan_gw, self.viewer_lan_gw),
        ):
            self._address(router, "wan", f"{wan}/30")
            self._address(router, "lan", f"{lan_gw}/24")
            self._ip(router, f"route add default via {wan_gw}")
            self._router_rules(router)
        for host, ip, gw in (
            (self.printer, self.printer_ip, self.printer_lan_gw),
            (self.viewer, self.viewer_ip, self.viewer_lan_gw),
        ):
            self._address(host, "eth0", f"{ip}/24")
            self._ip(host, f"route add default via {gw}")
        # The internet routes between the two routers' public addresses (for P2P), and
        # knows nothing of either LAN.
        self.run(self.internet, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self._void_default_route()
        self._nft(self.internet, f"add table ip {SWITCH_TABLE}")
        self._nft(
            self.internet,
            f"add chain ip {SWITCH_TABLE} forward {{ type filter hook forward priority -10; }}",
        )

    def _void_default_route(self) -> None:
        """The internet's default route leads to a veth whose other end is down, through a
        fixed neighbour, so a packet to an address nobody routes (a private LAN address the
        browser offered as a candidate) is dropped silently, as on the real internet. With
        no route, coturn's send to such a peer failed at once (ENETUNREACH) and coturn then
        closed that client's whole TCP allocation ("reason: general"), resetting the
        viewer's TURN-over-TCP connection: relay over TCP never played here."""
        self._ip(self.internet, f"link add {VOID_DEV} type veth peer name {VOID_DEV}-end")
        self._ip(self.internet, f"link set {VOID_DEV} up")
        self._ip(self.internet, f"route add default via {VOID_GW} dev {VOID_DEV} onlink")
        self._ip(
            self.internet, f"neigh add {VOID_GW} lladdr {VOID_MAC} dev {VOID_DEV} nud permanent"
        )

    def _router_rules(self, router: str) -> None:
        self.run(router, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        ruleset = f"""
table ip nat {{
    chain postrouting {{
        type nat hook postrouting priority srcnat; policy accept;
        oifname "wan" masquerade
    }}
}}
table ip filter {{
    chain forward {{
        type filter hook forward priority 0; policy drop;
        ct state established,related accept
        iifname "lan" oifname "wan" accept
    }}
    # Unsolicited packets to the router itself are dropped, not answered: a dropped packet
    # leaves no conntrack entry, whereas one answered with port-unreachable would, and the
    # LAN host's later outbound packet to that peer would then be mapped to another port,
    # which breaks UDP hole punching (ICE's P2P) as no home router does.
    chain input {{
        type filter hook input priority 0; policy accept;
        iifname "wan" ct state != {{ established, related }} drop
    }}
}}
table ip {SWITCH_TABLE} {{
    chain forward {{
        # Before the stateful accept (priority 0), so a drop also ends established flows.
        type filter hook forward priority -10; policy accept;
    }}
}}
"""
        done = subprocess.run(
            ["ip", "netns", "exec", router, "nft", "-f", "-"],
            input=ruleset,
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise AssertionError(f"nft ruleset in {router}: {done.stderr.strip()}")

    def _ip(self, ns: str, args: str) -> None:
        self.run(ns, "ip", *args.split())

    def _nft(self, ns: str, command: str) -> None:
        self.run(ns, "nft", command)

    def _link(self, ns_a: str, dev_a: str, ns_b: str, dev_b: str) -> None:
        subprocess.run(
            ["ip", "-n", ns_a, "link", "add", dev_a, "type", "veth", "peer", "name", dev_b,
             "netns", ns_b],
            check=True, capture_output=True,
        )  # fmt: skip
        self._ip(ns_a, f"link set {dev_a} up")
        self._ip(ns_b, f"link set {dev_b} up")

    def _address(self, ns: str, dev: str, cidr: str) -> None:
        self._ip(ns, f"addr add {cidr} dev {dev}")

    def close(self) -> None:
        """Stop everything the harness started and delete its namespaces (and with them
        every veth pair). Safe to call twice."""
        _close_all(self._browsers, lambda b: b.close())
        _close_all(self._servers, lambda s: s.close())
        if self.coturn is not None:
            self.coturn.close()
            self.coturn = None
        _close_all(self._children, lambda p: terminate(p, 5))
        for ns in reversed(self._created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._created.clear()

    def __enter__(self) -> Nat:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _close_all(items: list[Any], close: Callable[[Any], object]) -> None:
    while items:
        item = items.pop()
        try:
            close(item)
        except Exception:  # one failed stop must not leave the others running
            continue
