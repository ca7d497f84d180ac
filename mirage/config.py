"""The Mirage proxy's own config file (JSON), validated once into a frozen dataclass.

::

    {"listen": "0.0.0.0:8443",
     "tls": {"cert": "/etc/mirage/cert.pem", "key": "/etc/mirage/key.pem"},
     "state_dir": "/var/lib/mirage",
     "turn": {"secret": "...", "urls": ["turn:turn.example.org:3478?transport=udp"]},
     "signal_timeout": 15}

Without ``tls`` the proxy serves plain ``ws://`` (for tests and for a TLS-terminating
reverse proxy in front) and says so when it starts. Every error names the key path
(``turn.urls``) and what is allowed, as Titanium's own config does (common/config.py).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from titanium.common.address import Address, parse_address
from titanium.common.fields import ConfigError, Field, read_json_file, take_fields

__all__ = ["ConfigError", "ProxyConfig", "TlsConfig", "TurnConfig", "load_proxy_config"]


@dataclass(frozen=True)
class TlsConfig:
    cert: Path
    key: Path


@dataclass(frozen=True)
class TurnConfig:
    secret: str
    urls: tuple[str, ...]


@dataclass(frozen=True)
class ProxyConfig:
    listen: Address
    tls: TlsConfig | None
    state_dir: Path
    turn: TurnConfig | None
    source: str
    signal_timeout: int = 15


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
)


def parse_proxy_config(raw: Any, source: str) -> ProxyConfig:
    """Validate a decoded JSON document into a :class:`ProxyConfig`, or raise ConfigError."""
    v = take_fields(raw, "", PROXY_FIELDS)
    return ProxyConfig(
        v["listen"], v["tls"], v["state_dir"], v["turn"], source, v["signal_timeout"]
    )


def load_proxy_config(path: str | os.PathLike[str]) -> ProxyConfig:
    """Load and validate the proxy config file at ``path``."""
    return parse_proxy_config(read_json_file(path), str(path))
