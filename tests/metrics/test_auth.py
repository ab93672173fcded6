"""Basic auth and the allowlist of /metrics.

Proves: every kind of bad Authorization header (missing, wrong scheme, bad base64, no colon,
wrong user, wrong password, non-UTF-8 bytes, non-ASCII text, huge) gets 401 with a
``WWW-Authenticate: Basic realm=...`` challenge and never a 500; the right credentials get
200; arbitrary header values (hypothesis) never get anything but 401; with no password the
view fails closed and ``manage.py check`` says why; a password file is re-read when it
changes (rotation); the CIDR allowlist trusts X-Forwarded-For only when told to, and then
only the entry the nearest proxy wrote.
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Callable
from pathlib import Path

import pytest
from django.test import Client
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from otel_django.config import Config
from otel_django.metrics.auth import check_basic_auth, client_allowed
from otel_django.metrics.checks import check_metrics
from tests.support.auth import PASSWORD, USERNAME, basic

pytestmark = pytest.mark.django_db

U, P = USERNAME.encode(), PASSWORD.encode()

BAD_HEADERS = {
    "missing": None,
    "empty": "",
    "wrong scheme": "Bearer " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode(),
    "scheme only": "Basic",
    "bad base64": "Basic !!!not-base64!!!",
    "base64 with junk": "Basic "
    + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    + "$",
    "no colon": "Basic " + base64.b64encode(f"{USERNAME}{PASSWORD}".encode()).decode(),
    "wrong user": basic("admin", PASSWORD),
    "wrong password": basic(USERNAME, "wrong"),
    "empty password": basic(USERNAME, ""),
    "password prefix": basic(USERNAME, PASSWORD[:-1]),
    "password with suffix": basic(USERNAME, PASSWORD + "x"),
    "non-utf8 bytes": basic(b"\xff\xfe", b"\xc3\x28" + P),
    "non-ascii header": "Basic dGVzdDp0ZXN0é",
    "huge": "Basic " + "A" * 1_000_000,
}


@pytest.mark.smoke
@pytest.mark.parametrize("header", list(BAD_HEADERS.values()), ids=list(BAD_HEADERS))
def test_bad_credentials_get_401_with_a_challenge(header: str | None) -> None:
    assert not check_basic_auth(header, U, P)
    extra = {} if header is None else {"HTTP_AUTHORIZATION": header}
    response = Client().get("/metrics", **extra)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith('Basic realm="')
    assert b"# TYPE" not in response.content


@pytest.mark.smoke
def test_right_credentials_get_200() -> None:
    assert check_basic_auth(basic(), U, P)
    assert check_basic_auth("basic  " + basic()[6:] + " ", U, P)  # scheme is case-insensitive
    response = Client().get("/metrics", HTTP_AUTHORIZATION=basic())
    assert response.status_code == 200
    assert b"# TYPE" in response.content


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_header_text_is_never_accepted(header: str) -> None:
    assert not check_basic_auth(header, U, P)
    assert not check_basic_auth("Basic " + header, U, P)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=100))
def test_arbitrary_decoded_credentials_only_the_right_ones_pass(raw: bytes) -> None:
    header = "Basic " + base64.b64encode(raw).decode()
    assert check_basic_auth(header, U, P) == (raw == U + b":" + P)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.one_of(
        st.text(max_size=300),
        st.binary(max_size=60).map(lambda b: "Basic " + base64.b64encode(b).decode()),
    )
)
def test_view_answers_401_to_arbitrary_headers(header: str) -> None:
    response = Client().get("/metrics", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401


def test_no_password_fails_closed_and_check_says_why(
    override_config: Callable[..., Config],
) -> None:
    config = override_config(metrics_password=None, metrics_password_file=None)
    for header in (basic(USERNAME, ""), basic("", ""), basic()):
        response = Client().get("/metrics", HTTP_AUTHORIZATION=header)
        assert response.status_code == 401
    assert [m.id for m in check_metrics(config)] == ["otel_django.W101"]


def test_password_file_is_read_again_when_rotated(
    override_config: Callable[..., Config], tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text("first-secret\n")
    config = override_config(metrics_password=None, metrics_password_file=str(secret))
    assert check_metrics(config) == []
    client = Client()
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION=basic(USERNAME, "first-secret")).status_code
        == 200
    )
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION=basic(USERNAME, "first-secret\n")).status_code
        == 401
    )
    secret.write_text("second-secret-longer\n")
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION=basic(USERNAME, "first-secret")).status_code
        == 401
    )
    assert (
        client.get(
            "/metrics", HTTP_AUTHORIZATION=basic(USERNAME, "second-secret-longer")
        ).status_code
        == 200
    )
    secret.unlink()
    assert (
        client.get(
            "/metrics", HTTP_AUTHORIZATION=basic(USERNAME, "second-secret-longer")
        ).status_code
        == 401
    )
    assert [m.id for m in check_metrics(config)] == ["otel_django.W103"]
    secret.write_text("\n")
    assert client.get("/metrics", HTTP_AUTHORIZATION=basic(USERNAME, "")).status_code == 401
    assert [m.id for m in check_metrics(config)] == ["otel_django.W103"]


def test_password_file_wins_over_password(
    override_config: Callable[..., Config], tmp_path: Path
) -> None:
    secret = tmp_path / "password"
    secret.write_text("from-the-file")
    config = override_config(metrics_password_file=str(secret))
    client = Client()
    assert client.get("/metrics", HTTP_AUTHORIZATION=basic()).status_code == 401
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION=basic(USERNAME, "from-the-file")).status_code
        == 200
    )
    assert [m.id for m in check_metrics(config)] == ["otel_django.W102"]


def test_other_username(override_config: Callable[..., Config]) -> None:
    override_config(metrics_username="prometheus")
    client = Client()
    assert client.get("/metrics", HTTP_AUTHORIZATION=basic()).status_code == 401
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION=basic("prometheus", PASSWORD)).status_code == 200
    )


def nets(*cidrs: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    return tuple(ipaddress.ip_network(c) for c in cidrs)


def test_allowlist_unit() -> None:
    allowed = nets("10.0.0.0/8", "2001:db8::/32")
    assert client_allowed({"REMOTE_ADDR": "10.1.2.3"}, allowed, False)
    assert client_allowed({"REMOTE_ADDR": "2001:db8::1"}, allowed, False)
    assert client_allowed({"REMOTE_ADDR": "::ffff:10.0.0.1"}, allowed, False)
    assert not client_allowed({"REMOTE_ADDR": "192.168.1.1"}, allowed, False)
    assert not client_allowed({"REMOTE_ADDR": "not-an-ip"}, allowed, False)
    assert not client_allowed({}, allowed, False)
    # Not trusted: the header is ignored.
    assert not client_allowed(
        {"REMOTE_ADDR": "192.168.1.1", "HTTP_X_FORWARDED_FOR": "10.0.0.1"}, allowed, False
    )
    # Trusted: the last entry (written by our proxy) counts, not what the client claimed.
    assert client_allowed(
        {"REMOTE_ADDR": "192.168.1.1", "HTTP_X_FORWARDED_FOR": "1.2.3.4, 10.0.0.1"}, allowed, True
    )
    assert not client_allowed(
        {"REMOTE_ADDR": "10.0.0.9", "HTTP_X_FORWARDED_FOR": "10.0.0.1, 1.2.3.4"}, allowed, True
    )
    assert client_allowed({"REMOTE_ADDR": "anything"}, (), False)  # no allowlist


def test_allowlist_in_the_view(override_config: Callable[..., Config]) -> None:
    client = Client()
    override_config(metrics_allowed_networks=nets("10.0.0.0/8"))
    response = client.get("/metrics", HTTP_AUTHORIZATION=basic())  # REMOTE_ADDR 127.0.0.1
    assert response.status_code == 403
    assert (
        client.get("/metrics", HTTP_AUTHORIZATION=basic(), REMOTE_ADDR="10.9.9.9").status_code
        == 200
    )
    assert client.get("/metrics", REMOTE_ADDR="10.9.9.9").status_code == 401
    assert (
        client.get(
            "/metrics", HTTP_AUTHORIZATION=basic(), HTTP_X_FORWARDED_FOR="10.0.0.1"
        ).status_code
        == 403
    )
    override_config(metrics_allowed_networks=nets("10.0.0.0/8"), trust_x_forwarded_for=True)
    assert (
        client.get(
            "/metrics", HTTP_AUTHORIZATION=basic(), HTTP_X_FORWARDED_FOR="10.0.0.1"
        ).status_code
        == 200
    )
