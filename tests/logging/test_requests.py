"""Requests through the real middleware and Django's test client: request ids, the access log,
concurrency (threads and asyncio), redaction of a canary secret in lines and spans."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
import structlog
from django.contrib.auth.models import User
from django.test import AsyncClient, Client
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from shop.models import Category, Product

from otel_django.config import Config
from otel_django.redaction import REDACTED
from tests.support.lines import Lines

pytestmark = pytest.mark.urls("tests.logging.urls")

NEW_ID = re.compile(r"^[0-9a-f]{32}$")
CANARY = "CANARY-s3cr3t-7f3a9"


def access_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("logger") == "otel_django.access"]


def server_span_attributes(spans: InMemorySpanExporter) -> list[dict[str, Any]]:
    return [dict(s.attributes or {}) for s in spans.get_finished_spans() if s.kind.name == "SERVER"]


@pytest.fixture
def shop(db: None) -> Product:
    category = Category.objects.create(name="Shoes")
    return Product.objects.create(name="Trail runner", price_cents=8900, category=category)


@pytest.mark.smoke
def test_every_demo_view_writes_only_json_lines(shop: Product, lines: Lines) -> None:
    client = Client(raise_request_exception=False)
    paths = [
        "/products/",
        f"/products/{shop.pk}/",
        "/products/999/",
        "/n-plus-one/",
        "/cached/",
        "/cached/",
        "/redis/",
        "/boom/",
        "/nope/",
        "/log/",
    ]
    responses = [client.get(path) for path in paths]
    got = lines()
    access = access_lines(got)
    assert [line["url.path"] for line in access] == paths
    assert [line["http.response.status_code"] for line in access] == [
        r.status_code for r in responses
    ]
    assert [line["request_id"] for line in access] == [r["X-Request-ID"] for r in responses]
    for line in got:
        assert {"timestamp", "level", "event", "service.name"} <= set(line)
        if line.get("logger") != "otel_django.access":
            continue
        assert NEW_ID.match(line["trace_id"]) and re.match(r"^[0-9a-f]{16}$", line["span_id"])
    # Django logs 4xx after the middleware has returned: those lines keep the request's ids.
    django_lines = [line for line in got if line.get("logger") == "django.request"]
    assert len(django_lines) == 3  # /products/999/ and /nope/: 404; /boom/: 500
    assert all(
        line["request_id"] in {r["X-Request-ID"] for r in responses} and "trace_id" in line
        for line in django_lines
    )
    boom = [
        line
        for line in got
        if line.get("logger") == "django.request"
        and line["event"] == "Internal Server Error: /boom/"
    ]
    assert boom[0]["exception"][0]["exc_type"] == "RuntimeError"
    assert boom[0]["request_id"] == responses[7]["X-Request-ID"]


def test_access_line_fields(shop: Product, lines: Lines) -> None:
    response = Client().get(
        f"/products/{shop.pk}/?q=trail&password=hunter2",
        HTTP_X_REQUEST_ID="req-fields.1",
        REMOTE_ADDR="10.1.2.3",
        HTTP_X_FORWARDED_FOR="203.0.113.9",
    )
    (line,) = access_lines(lines())
    assert line["event"] == "request" and line["level"] == "info"
    assert line["http.request.method"] == "GET"
    assert line["http.route"] == "products/<int:pk>/"
    assert line["url.path"] == f"/products/{shop.pk}/"
    assert line["url.query"] == f"q=trail&password={REDACTED}"
    assert line["http.response.status_code"] == 200
    assert line["http.response.body.size"] == len(response.content)
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] > 0
    assert line["client.address"] == "10.1.2.3"  # X-Forwarded-For is not trusted by default
    assert "user.id" not in line
    assert line["request_id"] == response["X-Request-ID"] == "req-fields.1"


def test_forwarded_address_and_user_id_when_switched_on(
    db: None, lines: Lines, override_config: Callable[..., Config]
) -> None:
    override_config(trust_x_forwarded_for=True, log_user_id=True)
    user = User.objects.create_user("ann", password="irrelevant")
    client = Client()
    client.force_login(user)
    # The client sent "198.51.100.7" itself; our proxy (10.0.0.1) appended the address it saw.
    client.get("/log/", REMOTE_ADDR="10.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.7, 203.0.113.9")
    (line,) = access_lines(lines())
    assert line["client.address"] == "203.0.113.9"
    assert line["user.id"] == str(user.pk)


def test_slow_requests_log_at_warning(lines: Lines, override_config: Callable[..., Config]) -> None:
    override_config(slow_request_ms=0.0)
    Client().get("/log/")
    (line,) = access_lines(lines())
    assert (line["level"], line["event"]) == ("warning", "slow request")


def test_server_errors_log_at_error(lines: Lines) -> None:
    Client(raise_request_exception=False).get("/boom/")
    (line,) = access_lines(lines())
    assert (line["level"], line["http.response.status_code"]) == ("error", 500)


def test_a_safe_request_id_is_kept_echoed_and_on_the_span(
    lines: Lines, spans: InMemorySpanExporter
) -> None:
    response = Client().get("/log/", HTTP_X_REQUEST_ID="Abc-123_x.y")
    assert response["X-Request-ID"] == "Abc-123_x.y"
    assert {line["request_id"] for line in lines()} == {"Abc-123_x.y"}
    assert server_span_attributes(spans)[0]["otel_django.request_id"] == "Abc-123_x.y"


@pytest.mark.parametrize(
    "hostile",
    [
        "abc\r\nSet-Cookie: stolen=1",
        "x" * 10 * 1024,
        "a" * 129,
        "caf\u00e9-\u65e5\u672c",
        "with space",
        "quote\"and'",
        "",
    ],
)
def test_an_unsafe_request_id_is_replaced_never_echoed_or_logged(
    hostile: str, raw_output: Callable[[], str], spans: InMemorySpanExporter
) -> None:
    response = Client().get("/log/", HTTP_X_REQUEST_ID=hostile)
    new_id = response["X-Request-ID"]
    assert NEW_ID.match(new_id)
    output = raw_output()
    lines = [json.loads(line) for line in output.splitlines()]
    assert {line["request_id"] for line in lines} == {new_id}
    if hostile:
        assert hostile not in output and json.dumps(hostile)[1:-1] not in output
    assert server_span_attributes(spans)[0]["otel_django.request_id"] == new_id


def test_the_request_id_is_bound_only_during_the_request(lines: Lines) -> None:
    log = structlog.get_logger("tests.outside")
    log.info("before")
    Client().get("/log/", HTTP_X_REQUEST_ID="only-inside")
    log.info("after")
    logging.getLogger("tests.outside").info("after, stdlib")
    got = lines()
    inside = [line for line in got if line.get("logger") != "tests.outside"]
    outside = [line for line in got if line.get("logger") == "tests.outside"]
    assert len(inside) == 3 and {line["request_id"] for line in inside} == {"only-inside"}
    assert len(outside) == 3
    assert not any("request_id" in line or "trace_id" in line for line in outside)


def check_lines_belong_to_their_request(
    got: list[dict[str, Any]], ids: list[str], lines_per_request: int
) -> None:
    by_trace: dict[str, set[str]] = defaultdict(set)
    by_request: dict[str, int] = defaultdict(int)
    for line in got:
        if "trace_id" in line:
            by_trace[line["trace_id"]].add(line["request_id"])
            by_request[line["request_id"]] += 1
        elif line.get("logger") != "otel_django.export":
            assert "request_id" not in line, line
    assert all(len(request_ids) == 1 for request_ids in by_trace.values())
    assert sorted(by_request) == sorted(ids)
    assert set(by_request.values()) == {lines_per_request}


def test_concurrent_threads_keep_their_own_request_ids(lines: Lines) -> None:
    ids = [f"thread-{t}-req-{r}" for t in range(6) for r in range(5)]
    errors: list[BaseException] = []
    stop = threading.Event()

    def requests(my_ids: list[str]) -> None:
        client = Client()
        try:
            for request_id in my_ids:
                assert (
                    client.get("/log/", HTTP_X_REQUEST_ID=request_id)["X-Request-ID"] == request_id
                )
        except BaseException as exc:
            errors.append(exc)

    def background() -> None:
        log = structlog.get_logger("tests.background")
        while not stop.is_set():
            log.info("background work")
            stop.wait(0.002)

    noise = threading.Thread(target=background)
    noise.start()
    threads = [
        threading.Thread(target=requests, args=(ids[t * 5 : (t + 1) * 5],)) for t in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    stop.set()
    noise.join(5)
    assert not errors
    got = lines()
    assert any(line.get("logger") == "tests.background" for line in got)
    check_lines_belong_to_their_request(got, ids, lines_per_request=3)


def test_concurrent_async_requests_keep_their_own_request_ids(lines: Lines) -> None:
    ids = [f"async-req-{n}" for n in range(20)]

    async def main() -> list[str]:
        client = AsyncClient()
        log = structlog.get_logger("tests.background")

        async def one(request_id: str) -> str:
            response = await client.get("/alog/", headers={"X-Request-ID": request_id})
            log.info("between requests")  # this task's context: no request id
            return str(response["X-Request-ID"])

        return list(await asyncio.gather(*(one(i) for i in ids)))

    assert asyncio.run(main()) == ids
    got = lines()
    assert sum(line.get("event") == "between requests" for line in got) == len(ids)
    check_lines_belong_to_their_request(got, ids, lines_per_request=3)


def test_a_canary_secret_never_reaches_a_line_or_a_span(
    shop: Product, raw_output: Callable[[], str], spans: InMemorySpanExporter
) -> None:
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=f"Bearer {CANARY}")
    client.cookies["sessionid"] = CANARY
    client.cookies["csrftoken"] = CANARY
    query = {"password": CANARY, "api_key": CANARY, "q": "shoes"}
    client.post(
        "/form/?" + "&".join(f"{k}={v}" for k, v in query.items()),
        {"username": "ann", "password": CANARY, "card_number": CANARY},
    )
    client.get("/products/", query)
    client.get("/boom/", query)
    client.get("/products/", query, HTTP_X_API_KEY=CANARY, HTTP_COOKIE=f"session={CANARY}")
    output = raw_output()
    assert output.count("\n") >= 8
    assert CANARY not in output
    form_lines = [json.loads(line) for line in output.splitlines() if "form received" in line]
    assert form_lines[0]["password"] == REDACTED and form_lines[0]["username"] == "ann"
    assert form_lines[1]["form"]["card_number"] == REDACTED
    finished = spans.get_finished_spans()
    assert finished
    for span in finished:
        assert CANARY not in span.to_json()
