"""The printer's link to a Mirage proxy: the ``mirage`` keys beside ``titanium_streams``.

::

    "mirage": {"titanium_streams": {…},
               "proxy": "mirage.example.org",      # or HOST:PORT, wss://HOST, ws://HOST:PORT
               "device": {"id": "dev_…", "secret": "…"},
               "plain_ws": false,
               "ca_file": ""}

``proxy`` "" dials nothing. Without a port, ``titanium_streams.signaling_port`` is used.
The printer dials ``wss://`` with the certificate verified (against ``ca_file`` when set,
else the system's CAs). Plain ``ws://`` carries the device secret in clear, so it is used
only when asked for: ``ws://`` written in ``proxy`` to a loopback host, or ``plain_ws: true``
(the operator trusts the network to that host).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from typing import Any

from titanium.common.fields import ConfigError, Field, take_fields

__all__ = ["MirageLink", "link_to_json", "parse_link", "take_mirage"]

DEVICE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# HOST, HOST:PORT, [V6]:PORT, each with an optional ws:// or wss:// in front.
_PROXY = re.compile(
    r"^(?:(?P<scheme>wss?)://)?(?P<host>\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(?::(?P<port>\d+))?/?$"
)
PROXY_FORMS = "'' (none), HOST, HOST:PORT, wss://HOST[:PORT] or ws://HOST[:PORT]"


@dataclass(frozen=True)
class MirageLink:
    """Where and as whom the printer dials out; ``proxy`` "" when it does not."""

    proxy: str  # as written
    scheme: str  # 'wss' or 'ws'
    host: str  # brackets stripped
    port: int
    device_id: str
    secret: str
    plain_ws: bool
    ca_file: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}/device"


def _ca_file(value: str) -> str:
    if value and not os.access(value, os.R_OK):
        raise ValueError("'' for the system's CAs, or a readable PEM file")
    return value


def _device(value: dict[str, Any]) -> tuple[str, str]:
    got = take_fields(value, "mirage.device", DEVICE_FIELDS)
    return got["id"], got["secret"]


def _device_id(value: str) -> str:
    if value and not DEVICE_ID.match(value):
        raise ValueError("the id `titaniumctl mirage add-device` printed, e.g. dev_0123abcd…")
    return value


DEVICE_FIELDS = (
    Field("id", str, "", "the device id the proxy gave this printer", _device_id),
    Field("secret", str, "", "the device secret the proxy printed once", None),
)
LINK_FIELDS = (
    Field("titanium_streams", dict, {}, "stream settings for remote viewers", None),
    Field("proxy", str, "", PROXY_FORMS, None),
    Field("device", dict, {}, "this printer at the proxy: {id, secret}", _device),
    Field("plain_ws", bool, False, "allow ws:// (no TLS) to a host that is not loopback", None),
    Field("ca_file", str, "", "PEM of the CA that signed a self-hosted proxy", _ca_file),
)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def take_mirage(raw: Any) -> dict[str, Any]:
    """The ``mirage`` block's keys checked (``titanium_streams`` still to parse)."""
    return take_fields(raw, "mirage", LINK_FIELDS)


def parse_link(got: dict[str, Any], signaling_port: int) -> MirageLink:
    """The link from :func:`take_mirage`'s keys, on ``signaling_port`` unless ``proxy``
    names a port."""
    device_id, secret = got["device"]
    proxy, plain = got["proxy"].strip(), got["plain_ws"]
    scheme, host, port = "wss", "", signaling_port
    if proxy:
        m = _PROXY.match(proxy)
        if not m or (m.group("port") and not 1 <= int(m.group("port")) <= 65535):
            raise ConfigError("mirage.proxy", PROXY_FORMS, proxy)
        host = m.group("host").strip("[]")
        port = int(m.group("port") or signaling_port)
        scheme = m.group("scheme") or ("ws" if plain else "wss")
        if scheme == "ws" and not plain and not _loopback(host):
            raise ConfigError(
                "mirage.proxy",
                "wss:// to a host that is not loopback (ws:// sends the device secret in "
                "clear; set mirage.plain_ws to true to allow it)",
                proxy,
            )
    return MirageLink(proxy, scheme, host, port, device_id, secret, plain, got["ca_file"])


def link_to_json(link: MirageLink) -> dict[str, Any]:
    return {
        "proxy": link.proxy,
        "device": {"id": link.device_id, "secret": link.secret},
        "plain_ws": link.plain_ws,
        "ca_file": link.ca_file,
    }
