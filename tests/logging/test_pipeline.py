"""The log pipeline itself: one JSON object per line, whatever is logged, with the same keys
through structlog and stdlib loggers, redacted, and never raising into the caller."""

from __future__ import annotations

import dataclasses
import io
import json
import logging
import os
import re
import signal
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from otel_django import runtime
from otel_django.config import ConfigError, load_config
from otel_django.logging.output import LineLogger, LineWriter, PipelineHandler
from otel_django.logging.processors import Timestamps, merge_contextvars, rfc3339
from otel_django.logging.setup import build_processors, configure_logging
from otel_django.redaction import REDACTED, Redactor
from tests.support.lines import Lines, parse_lines

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
CORE_ORDER = [
    "timestamp",
    "level",
    "logger",
    "event",
    "request_id",
    "trace_id",
    "span_id",
    "service.name",
]
HOSTILE_MESSAGES = [
    "quotes \" and ' and a backslash \\",
    "two\nlines\r\nand a CR\r",
    "unicode: zoé, 日本語, emoji 🎉, RTL \u202e, line separator \u2028",
    "control: NUL \x00 BEL \x07 ESC \x1b[31m red",
    "lone surrogate \ud800",
    "",
]
tracer = TracerProvider().get_tracer("tests")


@dataclasses.dataclass
class Pipeline:
    stream: io.StringIO
    structlog_logger: Any
    stdlib_logger: logging.Logger

    def lines(self) -> list[dict[str, Any]]:
        return parse_lines(self.stream.getvalue())

    def raw(self) -> str:
        return self.stream.getvalue()


def make_pipeline(**changes: Any) -> Pipeline:
    if "log_processors" in changes:  # dotted paths, loaded as the configuration loads them
        paths = list(changes["log_processors"])
        changes["log_processors"] = load_config({}, {"LOG_PROCESSORS": paths}).logging.processors
    config = runtime.current().config.replace(**changes)
    stream = io.StringIO()
    writer = LineWriter(stream)
    processors = build_processors(config)
    bound = structlog.wrap_logger(
        LineLogger("tests.pipeline", writer),
        processors=processors,
        context_class=dict,
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
    )
    stdlib_logger = logging.getLogger("tests.pipeline.stdlib")
    stdlib_logger.handlers[:] = [PipelineHandler(processors, writer, Redactor())]
    stdlib_logger.propagate = False
    stdlib_logger.setLevel(logging.INFO)
    return Pipeline(stream, bound, stdlib_logger)


@pytest.fixture
def pipeline() -> Pipeline:
    return make_pipeline()


@pytest.fixture
def in_request() -> Iterator[trace.Span]:
    span = tracer.start_span("GET /x")
    tokens = structlog.contextvars.bind_contextvars(request_id="req-1")
    try:
        with trace.use_span(span, end_on_exit=True):
            yield span
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


def test_structlog_and_stdlib_lines_have_the_same_keys_in_the_same_order(
    pipeline: Pipeline, in_request: trace.Span
) -> None:
    pipeline.structlog_logger.info("from structlog", order_id=42)
    pipeline.stdlib_logger.warning("from %s", "stdlib", extra={"order_id": 42})
    first, second = pipeline.lines()
    context = in_request.get_span_context()
    for line in (first, second):
        assert list(line)[:8] == CORE_ORDER
        assert TIMESTAMP.match(line["timestamp"])
        assert line["request_id"] == "req-1"
        assert line["trace_id"] == format(context.trace_id, "032x")
        assert line["span_id"] == format(context.span_id, "016x")
        assert line["service.name"] == "otel-django-tests"
        assert line["order_id"] == 42
    assert (first["level"], first["logger"], first["event"]) == (
        "info",
        "tests.pipeline",
        "from structlog",
    )
    assert (second["level"], second["event"]) == ("warning", "from stdlib")
    assert second["logger"] == "tests.pipeline.stdlib"


def test_outside_a_request_there_is_no_request_or_trace_id(pipeline: Pipeline) -> None:
    pipeline.structlog_logger.info("outside")
    pipeline.stdlib_logger.info("outside")
    for line in pipeline.lines():
        assert "request_id" not in line
        assert "trace_id" not in line and "span_id" not in line


def test_an_exception_is_one_structured_field_without_locals(pipeline: Pipeline) -> None:
    def fail() -> None:
        local_secret = "LOCAL-SECRET-VALUE"  # noqa: F841 - must not be rendered
        try:
            raise KeyError("inner")
        except KeyError as exc:
            raise ValueError('outer "quoted"\nsecond line') from exc

    try:
        fail()
    except ValueError:
        pipeline.structlog_logger.exception("structlog failed")
        pipeline.stdlib_logger.exception("stdlib failed")
    raw = pipeline.raw()
    assert raw.count("\n") == 2
    assert "LOCAL-SECRET-VALUE" not in raw
    for line in pipeline.lines():
        assert line["level"] == "error"
        outer, cause = line["exception"]
        assert outer["exc_type"] == "ValueError"
        assert outer["exc_value"] == 'outer "quoted"\nsecond line'
        assert outer["frames"][-1]["name"] == "fail"
        assert set(outer["frames"][-1]) == {"filename", "lineno", "name"}
        assert cause["exc_type"] == "KeyError" and cause["is_cause"] is True


def test_exc_info_outside_an_except_block_is_ignored(pipeline: Pipeline) -> None:
    pipeline.structlog_logger.error("no exception here", exc_info=True)
    pipeline.stdlib_logger.exception("nor here")
    assert all("exception" not in line for line in pipeline.lines())


@pytest.mark.parametrize("message", HOSTILE_MESSAGES)
def test_hostile_messages_stay_one_line_and_round_trip(pipeline: Pipeline, message: str) -> None:
    pipeline.structlog_logger.info(message, value=message)
    pipeline.stdlib_logger.info(message, extra={"value": message})
    raw = pipeline.raw()
    assert raw.count("\n") == 2 and raw.endswith("\n")
    assert "\r" not in raw and "\x1b" not in raw
    for line in pipeline.lines():
        assert line["event"] == line["value"]
        expected = (
            message.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            if "\ud800" in message
            else message
        )
        assert line["event"] in (message, expected)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(event=st.text(), key=st.text(min_size=1), value=st.text() | st.integers() | st.floats())
def test_any_text_gives_one_valid_json_line(event: str, key: str, value: object) -> None:
    pipeline = make_pipeline()
    pipeline.structlog_logger.info(event, **{"k_" + key: value})
    pipeline.stdlib_logger.info(event, extra={"k_" + key: value})
    raw = pipeline.raw()
    assert raw.count("\n") == 2
    assert len(pipeline.lines()) == 2


def test_values_json_cannot_represent_still_give_a_valid_line(pipeline: Pipeline) -> None:
    cycle: dict[str, Any] = {}
    cycle["self"] = cycle
    pipeline.structlog_logger.info(
        "odd values",
        big=2**70,
        obj=object(),
        items={1, 2},
        data=b"\xff bytes",
        nested={1: "int key"},
    )
    pipeline.structlog_logger.info("a cycle", cycle=cycle)
    first, second = pipeline.lines()
    assert first["big"] == 2**70 and first["items"] == [1, 2]
    assert first["obj"].startswith("<object object")
    assert second["event"] == "a cycle" and "log_render_error" in second


def test_a_broken_stdlib_format_keeps_the_message() -> None:
    pipeline = make_pipeline()  # here, not in a fixture: pytest's own handler would raise
    pipeline.stdlib_logger.info("count: %d", "not a number")
    (line,) = pipeline.lines()
    assert "count: %d" in line["event"] and "not a number" in line["event"]


def test_sensitive_keys_are_redacted_in_both_paths(pipeline: Pipeline) -> None:
    pipeline.structlog_logger.info(
        "login",
        password="p4ss",
        api_key="k3y",
        user="ann",
        nested={"Authorization": "Bearer t0k", "page": 2},
    )
    pipeline.stdlib_logger.info("login", extra={"password": "p4ss", "session_id": "s3s"})
    raw = pipeline.raw()
    for secret in ("p4ss", "k3y", "t0k", "s3s"):
        assert secret not in raw
    first, second = pipeline.lines()
    assert first["password"] == REDACTED and first["user"] == "ann"
    assert first["nested"] == {"Authorization": REDACTED, "page": 2}
    assert second["session_id"] == REDACTED


def test_redact_keys_setting_adds_fragments() -> None:
    pipeline = make_pipeline(redact_keys=("iban",))
    pipeline.structlog_logger.info("payment", customer_iban="DE00123", amount=3)
    (line,) = pipeline.lines()
    assert line["customer_iban"] == REDACTED and line["amount"] == 3


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "PASSWORD",
        "user_password",
        "passwd",
        "mysql_pwd",
        "client_secret",
        "access_token",
        "api_key",
        "apiKey",
        "X-API-Key",
        "Authorization",
        "auth",
        "Cookie",
        "sessionid",
        "csrfmiddlewaretoken",
        "X-CSRFToken",
        "credit_card",
        "credit-card-number",
        "cvv",
        "ssn",
        "jwt",
        "private_key",
        "credentials",
    ],
)
def test_sensitive_keys(key: str) -> None:
    assert Redactor().is_sensitive(key)


@pytest.mark.parametrize(
    "key",
    [
        "author",
        "authors",
        "classname",
        "user",
        "page",
        "event",
        "http.route",
        "url.path",
        "duration_ms",
        "user.id",
        "count",
    ],
)
def test_ordinary_keys(key: str) -> None:
    assert not Redactor().is_sensitive(key)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=shoes&page=2", "q=shoes&page=2"),
        ("q=a%20b&password=hunter2", f"q=a%20b&password={REDACTED}"),
        ("API_KEY=x&token=y&t", f"API_KEY={REDACTED}&token={REDACTED}&t"),
        ("pass%77ord=x", f"pass%77ord={REDACTED}"),
        ("", ""),
    ],
)
def test_query_string_redaction(query: str, expected: str) -> None:
    assert Redactor().query_string(query) == expected


def test_headers_never_keep_credentials() -> None:
    headers = {
        "Authorization": "Bearer x",
        "Cookie": "a=b",
        "X-Api-Key": "k",
        "X-Auth-Token": "t",
        "Accept": "*/*",
    }
    assert Redactor().headers(headers) == {"X-Auth-Token": REDACTED, "Accept": "*/*"}


def processor_adding_team(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    event_dict["team"] = "checkout"
    event_dict["secret_hint"] = "added by a processor"
    return event_dict


def failing_processor(_: Any, __: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    raise RuntimeError("processor bug")


def test_log_processors_run_before_redaction() -> None:
    pipeline = make_pipeline(log_processors=(f"{__name__}.processor_adding_team",))
    pipeline.structlog_logger.info("x")
    pipeline.stdlib_logger.info("y")
    for line in pipeline.lines():
        assert line["team"] == "checkout" and line["secret_hint"] == REDACTED


def test_a_failing_log_processor_loses_nothing() -> None:
    pipeline = make_pipeline(log_processors=(f"{__name__}.failing_processor",))
    pipeline.structlog_logger.info("still here")
    (line,) = pipeline.lines()
    assert line["event"] == "still here"
    assert line["log_processor_error"].endswith("RuntimeError")


@pytest.mark.parametrize(
    "path", ["nope", "tests.logging.no_such_module.f", f"{__name__}.TIMESTAMP"]
)
def test_a_bad_log_processor_path_is_a_clear_config_error(path: str) -> None:
    with pytest.raises(ConfigError, match="LOG_PROCESSORS"):
        make_pipeline(log_processors=(path,))


def test_levels_below_log_level_are_dropped(pipeline: Pipeline) -> None:
    pipeline.structlog_logger.debug("hidden")
    pipeline.stdlib_logger.debug("hidden")
    pipeline.structlog_logger.info("shown")
    assert [line["event"] for line in pipeline.lines()] == ["shown"]


def test_console_format_is_readable_and_escapes_user_input() -> None:
    pipeline = make_pipeline(log_format="console")
    pipeline.structlog_logger.info("path /a\r\nFAKE LINE \x1b[31m", path="/b\n\x1b]0;title\x07")
    try:
        raise ValueError("boom")
    except ValueError:
        pipeline.structlog_logger.exception("failed")
    raw = pipeline.raw()
    first_line, rest = raw.split("\n", 1)
    assert "FAKE LINE" in first_line and "\\r\\n" in first_line and "\\x1b" in first_line
    assert "\x1b" not in first_line and "\r" not in raw
    assert "in view" not in raw and "Traceback" in rest and "ValueError: boom" in rest


def test_rfc3339_is_utc_with_microseconds() -> None:
    assert rfc3339(0.5) == "1970-01-01T00:00:00.500000Z"
    assert rfc3339(1_700_000_000.000001)[:20] == "2023-11-14T22:13:20."
    assert rfc3339(1_700_000_001.25) == "2023-11-14T22:13:21.250000Z"


def test_timestamps_format_each_second_once_and_agree_with_rfc3339() -> None:
    timestamps = Timestamps()
    for epoch in (0.5, 1_700_000_000.000001, 1_700_000_000.75, 1_700_000_001.25, 0.25):
        assert timestamps.from_epoch(epoch) == rfc3339(epoch)


class BrokenStream(io.StringIO):
    def write(self, text: str) -> int:
        raise BrokenPipeError


class AsciiStream(io.TextIOWrapper):
    def __init__(self) -> None:
        super().__init__(io.BytesIO(), encoding="ascii")


def test_a_broken_stdout_never_reaches_the_caller() -> None:
    logger = LineLogger("x", LineWriter(BrokenStream()))
    logger.info('{"event":"x"}\n')


def test_an_ascii_stdout_still_gets_valid_json() -> None:
    stream = AsciiStream()
    bound = structlog.wrap_logger(
        LineLogger("x", LineWriter(stream)), processors=build_processors(runtime.current().config)
    )
    bound.info("zoé 🎉")
    stream.flush()
    text = stream.buffer.getvalue().decode("ascii")  # type: ignore[attr-defined]
    assert json.loads(text)["event"] == "zoé 🎉"


def test_the_installed_pipeline_owns_the_root_logger(lines: Lines) -> None:
    root_handlers = [h for h in logging.getLogger().handlers if isinstance(h, PipelineHandler)]
    assert len(root_handlers) == 1
    for name in ("django", "django.server", "django.request"):
        logger = logging.getLogger(name)
        assert not any(type(h) is logging.StreamHandler for h in logger.handlers)
    assert logging.getLogger("django.server").propagate
    logging.getLogger("django.db.backends").warning("a django line")
    logging.getLogger("some.third.party").error("a library line")
    structlog.get_logger("app").info("an app line")
    assert [line["logger"] for line in lines()] == ["django.db.backends", "some.third.party", "app"]


def test_runserver_request_lines_are_redacted(lines: Lines) -> None:
    logging.getLogger("django.server").info(
        '"%s" %s %s',
        "GET /x?password=CANARY-1&q=ok HTTP/1.1",
        "200",
        "12",
        extra={"request": object(), "server_time": "22/Nov/2025 10:00:00", "status_code": 200},
    )
    (line,) = lines()
    assert "CANARY-1" not in json.dumps(line)
    assert line["event"] == f'"GET /x?password={REDACTED}&q=ok HTTP/1.1" 200 12'
    assert "request" not in line and line["status_code"] == 200


def test_logging_disabled_leaves_logging_alone() -> None:
    root = logging.getLogger()
    before = list(root.handlers), root.level, structlog.get_config()["processors"]
    configure_logging(runtime.current().config.replace(logging_enabled=False))
    assert (list(root.handlers), root.level, structlog.get_config()["processors"]) == before


def test_configuring_again_keeps_one_handler() -> None:
    first = configure_logging(runtime.current().config)
    second = configure_logging(runtime.current().config)
    assert first is not None and second is not None
    root_handlers = [h for h in logging.getLogger().handlers if isinstance(h, PipelineHandler)]
    assert root_handlers == [second.handler]
    # The processors are swapped in place: loggers structlog already cached follow.
    assert second.processors is first.processors is structlog.get_config()["processors"]


def test_lines_follow_redirected_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    structlog.get_logger("app").info("to stdout")
    assert json.loads(capsys.readouterr().out)["event"] == "to stdout"
    assert sys.stdout is not sys.__stdout__


def test_the_fast_context_merge_matches_structlogs() -> None:
    tokens = structlog.contextvars.bind_contextvars(kept=1, overridden=2, unbound=3)
    structlog.contextvars.unbind_contextvars("unbound")
    try:
        ours = merge_contextvars()(None, "info", {"overridden": "keyword wins"})
        theirs = structlog.contextvars.merge_contextvars(
            None, "info", {"overridden": "keyword wins"}
        )
        assert ours == theirs
        assert ours["kept"] == 1 and ours["overridden"] == "keyword wins" and "unbound" not in ours
    finally:
        structlog.contextvars.reset_contextvars(**tokens)


# The test forks on purpose, from a process with threads: that is the case it is about.
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_a_child_forked_while_a_line_is_written_can_write() -> None:
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    writer = LineWriter(stream)
    with writer._lock:  # as if another thread were writing at the fork
        pid = os.fork()
        if pid == 0:  # the child: its copy of the lock is held by a thread it does not have
            code = 1
            try:
                signal.alarm(10)  # a deadlock ends the child instead of the test run
                writer.write("from the child\n")
                code = 0
            finally:
                os._exit(code)
    _, status = os.waitpid(pid, 0)
    stream.close()
    with os.fdopen(read_end) as reader:
        assert reader.read() == "from the child\n"
    assert os.waitstatus_to_exitcode(status) == 0
