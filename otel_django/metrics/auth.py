"""Who may read /metrics: HTTP basic auth, and an optional client-address allowlist.

Everything that arrives is treated as hostile: the header is length-capped, the base64 is
decoded strictly, user and password are compared as bytes in constant time (through SHA-256,
so their lengths do not leak either), and any failure is a plain "no".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import os
import threading
from collections.abc import Mapping, Sequence

from ..client import client_address
from ..config import Config

logger = logging.getLogger("otel_django.metrics")

REALM = "otel_django metrics"
WWW_AUTHENTICATE = f'Basic realm="{REALM}", charset="UTF-8"'
MAX_HEADER_LENGTH = 4096

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def check_basic_auth(header: object, username: bytes, password: bytes) -> bool:
    """True only for ``Basic base64(username:password)`` with exactly these bytes."""
    if not isinstance(header, str) or len(header) > MAX_HEADER_LENGTH:
        return False
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        decoded = base64.b64decode(token.strip().encode("ascii"), validate=True)
    except (ValueError, binascii.Error):  # includes UnicodeEncodeError
        return False
    user, colon, given = decoded.partition(b":")
    if not colon:
        return False
    user_ok = hmac.compare_digest(_digest(user), _digest(username))
    password_ok = hmac.compare_digest(_digest(given), _digest(password))
    return user_ok & password_ok


class _SecretFile:
    """A password file, read again whenever it changes (a rotated Kubernetes secret)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._key: tuple[int, int, int] | None = None
        self._value: bytes | None = None
        self._failing = False

    def read(self) -> bytes | None:
        try:
            info = os.stat(self.path)
            key = (info.st_ino, info.st_mtime_ns, info.st_size)
            with self._lock:
                if key != self._key:
                    with open(self.path, "rb") as file:
                        value = file.read(MAX_HEADER_LENGTH + 1)
                    value = value.rstrip(b"\r\n")
                    self._value = value if 0 < len(value) <= MAX_HEADER_LENGTH else None
                    self._key = key
                    if self._value is None:
                        logger.error(
                            "metrics password file %s is empty or too long: "
                            "/metrics refuses every scrape",
                            self.path,
                        )
                self._failing = False
                return self._value
        except OSError as exc:
            if not self._failing:
                logger.error(
                    "metrics password file cannot be read (%s): /metrics refuses every scrape", exc
                )
                self._failing = True
            return None


_files: dict[str, _SecretFile] = {}
_files_lock = threading.Lock()


def expected_password(config: Config) -> bytes | None:
    """The password scrapes must present; ``None`` when none is set (serve nothing)."""
    if config.metrics.password_file:
        with _files_lock:
            secret = _files.get(config.metrics.password_file)
            if secret is None:
                secret = _files[config.metrics.password_file] = _SecretFile(
                    config.metrics.password_file
                )
        return secret.read()
    if config.metrics.password:
        return config.metrics.password.encode()
    return None


def client_allowed(
    meta: Mapping[str, object], networks: Sequence[Network], trust_x_forwarded_for: bool
) -> bool:
    if not networks:
        return True
    text = client_address(meta, trust_x_forwarded_for)
    if text is None:
        return False
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        mapped = address.ipv4_mapped
        return any(address in net or mapped in net for net in networks)
    return any(address in net for net in networks)
