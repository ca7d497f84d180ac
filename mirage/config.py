"""The Mirage proxy's own config file (JSON), validated once into a frozen dataclass.

::

    {"listen": "0.0.0.0:8443",
     "tls": {"cert": "/etc/mirage/cert.pem", "key": "/etc/mirage/key.pem"},
     "state_dir": "/var/lib/mirage",
     "turn": {"secret": "...", "urls": ["turn:turn.example.org:3478?transport=udp"]},
     "signal_timeout": 15,
     "limits": {"address_rate": 2, "address_burst": 20, ...},
     "trusted_proxies": ["127.0.0.1"],
     "admin_key": "... 32 characters or more ..."}

Without ``tls`` the proxy serves plain ``ws://`` (for tests and for a TLS-terminating
reverse proxy in front) and says so when it starts. Every error names the key path
(``turn.urls``) and what is allowed, as Titanium's own config does (common/config.py).
"""

from __future__ import annotations

import ipaddress
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from titanium.common.address import Address, parse_address
from titanium.common.fields import ConfigError, Field, read_json_file, take_fields

__all__ = [
    "ConfigError",
    "ProxyConfig",
    "ProxyLimits",
    "TlsConfig",
    "TurnConfig",
    "load_proxy_config",
]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class TlsConfig:
    cert: Path
    key: Path


@dataclass(frozen=True)
class TurnConfig:
    secret: str
    urls: tuple[str, ...]


@dataclass(frozen=True)
class ProxyLimits:
    """Signalling requests a second (sustained) and at once (burst) per source address, per
    token and per device; sessions open at once per token and per device; WebSocket
    messages a second from one device; admin requests a second per address."""

    address_rate: float = 2.0
    address_burst: int = 20
    token_rate: float = 2.0
    token_burst: int = 20
    device_rate: float = 10.0
    device_burst: int = 50
    sessions_per_token: int = 10
    sessions_per_device: int = 20
    device_messages_rate: float = 50.0
    device_messages_burst: int = 200
    admin_rate: float = 5.0
    admin_burst: int = 30


@dataclass(frozen=True)
class ProxyConfig:
    listen: Address
    tls: TlsConfig | None
    state_dir: Path
    turn: TurnConfig | None
    source: str
    signal_timeout: int = 15
    limits: ProxyLimits = ProxyLimits()
    trusted_proxies: tuple[Network, ...] = ()
    admin_key: str | None = None


def _readable(value: str) -> Path:
    if not value:
        raise ValueError("a path to a PEM file")
    path = Path(value)
    if not os.access(path, os.R_OK) or not path.is_file():
        raise ValueError(f"a readable PEM file, and {value} is not one")
    return path


def _turn_urls(value: list[Any]) -> tuple[str, ...]:
    if not value or not all(
        isinstance(u, str) and re.match(r"^turns?:[^\s?]+(\?transport=(udp|tcp))?$", u)
        for u in value
    ):
        raise ValueError(
            "a non-empty list of TURN URLs such as turn:turn.example.org:3478?transport=udp"
        )
    return tuple(value)


def _secret(value: str) -> str:
    # coturn's static-auth-secret signs every credential the proxy mints: a short one can be
    # guessed offline from one captured credential.
    if len(value) < 16:
        raise ValueError("at least 16 characters")
    return value


def _listen(value: str) -> Address:
    return parse_address(value, 1, 65535)


TLS_FIELDS = (
    Field("cert", str, None, "the certificate chain (PEM)", _readable),
    Field("key", str, None, "its private key (PEM)", _readable),
)
TURN_FIELDS = (
    Field("secret", str, None, "coturn's static-auth-secret", _secret),
    Field("urls", list, None, "the TURN URLs handed to both peers", _turn_urls),
)


def _tls(value: dict[str, Any] | None) -> TlsConfig | None:
    if value is None:
        return None
    v = take_fields(value, "tls", TLS_FIELDS)
    return TlsConfig(v["cert"], v["key"])


def _turn(value: dict[str, Any] | None) -> TurnConfig | None:
    if value is None:
        return None
    v = take_fields(value, "turn", TURN_FIELDS)
    return TurnConfig(v["secret"], v["urls"])


def _state_dir(value: str) -> Path:
    if not value:
        raise ValueError("a folder for the device database")
    return Path(value)


def _rate(value: float) -> float:
    if not 0.1 <= value <= 10000:
        raise ValueError("a rate a second from 0.1 to 10000")
    return float(value)


def _rate_field(name: str, default: float, help: str) -> Field:
    return Field(name, (int, float), default, help, _rate)


LIMITS_FIELDS = (
    _rate_field("address_rate", 2.0, "signalling requests a second per source address"),
    Field("address_burst", int, 20, "signalling requests at once per address", range=(1, 10000)),
    _rate_field("token_rate", 2.0, "signalling requests a second per token"),
    Field("token_burst", int, 20, "signalling requests at once per token", range=(1, 10000)),
    _rate_field("device_rate", 10.0, "signalling requests a second to one device"),
    Field("device_burst", int, 50, "signalling requests at once to a device", range=(1, 10000)),
    Field("sessions_per_token", int, 10, "sessions open at once per token", range=(1, 10000)),
    Field("sessions_per_device", int, 20, "sessions open at once per device", range=(1, 10000)),
    _rate_field("device_messages_rate", 50.0, "WebSocket messages a second from a device"),
    Field("device_messages_burst", int, 200, "messages at once from a device", range=(1, 100000)),
    _rate_field("admin_rate", 5.0, "admin API requests a second per address"),
    Field("admin_burst", int, 30, "admin API requests at once per address", range=(1, 10000)),
)


def _limits(value: dict[str, Any]) -> ProxyLimits:
    return ProxyLimits(**take_fields(value, "limits", LIMITS_FIELDS))


def _trusted(value: list[Any]) -> tuple[Network, ...]:
    try:
        if not all(isinstance(v, str) for v in value):
            raise ValueError
        return tuple(ipaddress.ip_network(v, strict=False) for v in value)
    except ValueError:
        raise ValueError(
            "a list of addresses or networks such as 127.0.0.1 or 10.0.0.0/8"
        ) from None


def _admin_key(value: str | None) -> str | None:
    # The key is a bearer secret reaching the network: a short one can be guessed online.
    # The error does not repeat the value: it is a secret, and errors reach logs.
    if value is not None and (len(value) < 32 or not value.isprintable() or " " in value):
        raise ConfigError(
            "admin_key", "at least 32 printable characters without spaces, or null (admin off)"
        )
    return value


PROXY_FIELDS = (
    Field("listen", str, "0.0.0.0:8443", "where devices and viewers connect", _listen),
    Field("tls", (dict, type(None)), None, "{cert, key}; without it: plain ws://", _tls),
    Field("state_dir", str, None, "folder for the device database", _state_dir),
    Field("turn", (dict, type(None)), None, "{secret, urls} for coturn's REST scheme", _turn),
    Field(
        "signal_timeout",
        int,
        15,
        "seconds a viewer's offer waits for the printer's answer before 504",
        range=(1, 120),
    ),
    Field("limits", dict, {}, "rate limits and session caps", _limits),
    Field(
        "trusted_proxies",
        list,
        [],
        "reverse proxies whose X-Forwarded-For names the client; default none",
        _trusted,
    ),
    Field(
        "admin_key", (str, type(None)), None, "the admin API's bearer key; null: off", _admin_key
    ),
)


def parse_proxy_config(raw: Any, source: str) -> ProxyConfig:
    """Validate a decoded JSON document into a :class:`ProxyConfig`, or raise ConfigError."""
    v = take_fields(raw, "", PROXY_FIELDS)
    return ProxyConfig(
        v["listen"],
        v["tls"],
        v["state_dir"],
        v["turn"],
        source,
        v["signal_timeout"],
        v["limits"],
        v["trusted_proxies"],
        v["admin_key"],
    )


def load_proxy_config(path: str | os.PathLike[str]) -> ProxyConfig:
    """Load and validate the proxy config file at ``path``."""
    return parse_proxy_config(read_json_file(path), str(path))
