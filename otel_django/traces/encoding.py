"""OTLP protobuf for a batch of spans, written directly in the protobuf wire format.

The bytes are an ``ExportTraceServiceRequest`` (``opentelemetry/proto/collector/trace/v1``),
the message the SDK's encoder (``opentelemetry.exporter.otlp.proto.common.trace_encoder``)
builds with protobuf objects: decoded, the two are equal message for message
(``tests/traces/test_encoding.py``). Building protobuf objects is most of what the SDK's
encoder costs; here each span becomes bytes in one pass, and what repeats is encoded once:

* the resource and the instrumentation scope, once per distinct object (they are immutable);
* attribute keys, and whole key/value pairs for string, integer and boolean values seen
  before (bounded caches).

Spans are grouped by resource, then by scope, in order of first appearance, as the SDK's
encoder groups them (by equality, not identity). Anything this encoder does not reproduce
exactly makes :meth:`SpanEncoder.encode` return None, and the caller uses the SDK's encoder
for that batch: an attribute value of an unexpected type, an integer outside int64, a string
that is not valid UTF-8 (the SDK drops such an attribute and logs it).

Wire format: https://protobuf.dev/programming-guides/encoding/ (field numbers from
``trace.proto``, ``common.proto`` and ``resource.proto`` of opentelemetry-proto).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind, StatusCode

from .. import _compat

_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack
_pack_double = struct.Struct("<d").pack

_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1

# One-byte varints, 0-127.
_SMALL = [bytes((n,)) for n in range(128)]

# Span.kind: the API's enum (INTERNAL = 0 ...) to trace.proto's (SPAN_KIND_INTERNAL = 1 ...),
# looked up by identity: an Enum's hash is computed in Python.
_KIND_BY_ID = {
    id(SpanKind.INTERNAL): b"\x30\x01",
    id(SpanKind.SERVER): b"\x30\x02",
    id(SpanKind.CLIENT): b"\x30\x03",
    id(SpanKind.PRODUCER): b"\x30\x04",
    id(SpanKind.CONSUMER): b"\x30\x05",
}
# Span.flags (field 16, fixed32): SPAN_FLAGS_CONTEXT_HAS_IS_REMOTE_MASK, and
# SPAN_FLAGS_CONTEXT_IS_REMOTE_MASK for a remote parent, as the SDK sets them.
_FLAGS_LOCAL = b"\x85\x01" + _pack_fixed32(0x100)
_FLAGS_REMOTE = b"\x85\x01" + _pack_fixed32(0x300)
# Link.flags (field 6, fixed32), the same masks.
_LINK_FLAGS_LOCAL = b"\x35" + _pack_fixed32(0x100)
_LINK_FLAGS_REMOTE = b"\x35" + _pack_fixed32(0x300)

_CACHE_MAX = 4096
_CACHED_STRING_MAX = 256


class Unencodable(Exception):
    """A value this encoder leaves to the SDK's."""


def varint(n: int) -> bytes:
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    n = len(payload)
    return tag + (_SMALL[n] if n < 0x80 else varint(n)) + payload


def _utf8(text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: protobuf refuses it, the SDK drops it
        raise Unencodable(text) from None


def any_value(value: Any) -> bytes:
    """An ``AnyValue`` message's bytes, dispatching as the SDK's ``_encode_value`` does."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _field(b"\x0a", _utf8(value))
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise Unencodable(value)
        return b"\x18" + varint(value if value >= 0 else value + (1 << 64))
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _field(b"\x3a", value)
    if isinstance(value, Sequence):
        return _field(b"\x2a", b"".join([_field(b"\x0a", any_value(v)) for v in value]))
    if isinstance(value, Mapping):
        pairs = [_field(b"\x0a", key_value(str(k), v)) for k, v in value.items()]
        return _field(b"\x32", b"".join(pairs))
    raise Unencodable(value)


def key_value(key: str, value: Any) -> bytes:
    """A ``KeyValue`` message's bytes."""
    return _field(b"\x0a", _utf8(key)) + _field(b"\x12", any_value(value))


def attributes_field(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    """Repeated ``KeyValue`` under ``tag``, uncached (resources, scopes, events, links)."""
    if not attributes:
        return b""
    return b"".join([_field(tag, key_value(k, v)) for k, v in attributes.items()])


def _resource(resource: Any) -> bytes:
    """``ResourceSpans.resource`` (field 1), as the SDK encodes it: attributes only."""
    return _field(b"\x0a", attributes_field(b"\x0a", resource.attributes))


def _scope(scope: Any) -> bytes:
    """``ScopeSpans.scope`` (field 1): present even when there is no scope, as in the SDK."""
    if scope is None:
        return b"\x0a\x00"
    body = b""
    if scope.name:
        body += _field(b"\x0a", _utf8(scope.name))
    if scope.version:
        body += _field(b"\x12", _utf8(scope.version))
    body += attributes_field(b"\x1a", scope.attributes)
    return _field(b"\x0a", body)


def _schema_url(url: str | None) -> bytes:
    return _field(b"\x1a", _utf8(url)) if url else b""


class _Group:
    """The spans of one resource (or of one scope within it), in order of appearance."""

    __slots__ = ("key", "members", "spans")

    def __init__(self, key: Any) -> None:
        self.key = key
        self.spans: list[bytes] = []
        self.members: dict[Any, _Group] = {}


class SpanEncoder:
    """Encodes batches of ``ReadableSpan`` into ``ExportTraceServiceRequest`` bytes.

    Not thread-safe: one per exporter, whose batch processor calls it from one thread at a
    time (``BatchProcessor`` exports under a lock).
    """

    def __init__(self) -> None:
        # id(obj) -> (obj, bytes): the object is kept, so its id is not reused meanwhile.
        self._resources: dict[int, tuple[Any, bytes]] = {}
        self._scopes: dict[int, tuple[Any, bytes]] = {}
        self._keys: dict[str, bytes] = {}
        self._names: dict[str, bytes] = {}
        # (key, type, value) -> the whole Span.attributes field, for scalar values.
        self._pairs: dict[tuple[str, type, Any], bytes] = {}
        # Most spans share the default (unset) status object.
        self._last_status: tuple[Any, bytes] = (object(), b"")
        self._containers = (
            _compat.span_containers
            if _compat.span_containers_available()
            else _compat.public_span_containers
        )

    def encode(self, spans: Sequence[ReadableSpan]) -> bytes | None:
        """The request's bytes; None when a span holds something left to the SDK's encoder."""
        try:
            return self._encode(spans)
        except Unencodable:
            return None

    def _encode(self, spans: Sequence[ReadableSpan]) -> bytes:
        resources: dict[int, _Group] = {}  # by id(resource); equal resources share a group
        groups: list[_Group] = []
        for span in spans:
            resource = span.resource
            group = resources.get(id(resource))
            if group is None:
                group = next((g for g in groups if g.key == resource), None)
                if group is None:
                    group = _Group(resource)
                    groups.append(group)
                resources[id(resource)] = group
            scope = span.instrumentation_scope or None
            scoped = group.members.get(id(scope))
            if scoped is None:
                scoped = next((g for g in group.members.values() if g.key == scope), None)
                if scoped is None:
                    scoped = _Group(scope)
                group.members[id(scope)] = scoped
            scoped.spans.append(self._span(span))
        out = []
        for group in groups:
            body = [self._cached(self._resources, group.key, _resource)]
            seen: set[int] = set()
            for scoped in group.members.values():
                if id(scoped) in seen:  # one scope group under several ids
                    continue
                seen.add(id(scoped))
                scope = scoped.key
                scope_spans = self._cached(self._scopes, scope, _scope) + b"".join(scoped.spans)
                if scope is not None:
                    scope_spans += _schema_url(scope.schema_url)
                body.append(_field(b"\x12", scope_spans))
            body.append(_schema_url(group.key.schema_url))
            out.append(_field(b"\x0a", b"".join(body)))
        return b"".join(out)

    @staticmethod
    def _cached(cache: dict[int, tuple[Any, bytes]], obj: Any, encode: Any) -> bytes:
        entry = cache.get(id(obj))
        if entry is not None and entry[0] is obj:
            return entry[1]
        if len(cache) >= 64:
            cache.clear()
        encoded: bytes = encode(obj)
        cache[id(obj)] = (obj, encoded)
        return encoded

    def _span(self, span: ReadableSpan) -> bytes:
        """``ScopeSpans.spans`` (field 2): one span's field, tag and length included."""
        context = span.context
        if context is None:
            raise Unencodable(span)
        # SpanContext is a tuple: (trace_id, span_id, is_remote, trace_flags, trace_state, ...)
        trace_id, span_id, _, _, trace_state = context[:5]
        parts = [b"\x0a\x10", trace_id.to_bytes(16, "big"), b"\x12\x08", span_id.to_bytes(8, "big")]
        if trace_state:
            parts.append(
                _field(b"\x1a", _utf8(",".join([f"{k}={v}" for k, v in trace_state.items()])))
            )
        parent = span.parent
        remote = False
        if parent:
            parts.append(b"\x22\x08")
            parts.append(parent[1].to_bytes(8, "big"))
            remote = parent[2]
        name = span.name
        if name:
            encoded_name = self._names.get(name)
            if encoded_name is None:
                if len(self._names) >= _CACHE_MAX:
                    self._names.clear()
                encoded_name = self._names[name] = _field(b"\x2a", _utf8(name))
            parts.append(encoded_name)
        parts.append(_KIND_BY_ID[id(span.kind)])
        start, end = span.start_time, span.end_time
        if start:
            parts.append(b"\x39" + _pack_fixed64(start))
        if end:
            parts.append(b"\x41" + _pack_fixed64(end))
        attributes, dropped_attributes, events, dropped_events, links, dropped_links = (
            self._containers(span)
        )
        if attributes:
            parts.append(self._span_attributes(attributes))
        if dropped_attributes:
            parts.append(b"\x50" + varint(dropped_attributes))
        if events:
            parts.extend([_field(b"\x5a", _event(event)) for event in events])
        if dropped_events:
            parts.append(b"\x60" + varint(dropped_events))
        if links:
            parts.extend([_field(b"\x6a", _link(link)) for link in links])
        if dropped_links:
            parts.append(b"\x70" + varint(dropped_links))
        status = span.status
        if status is self._last_status[0]:
            parts.append(self._last_status[1])
        else:
            encoded_status = _status(status)
            self._last_status = (status, encoded_status)
            parts.append(encoded_status)
        parts.append(_FLAGS_REMOTE if remote else _FLAGS_LOCAL)
        body = b"".join(parts)
        n = len(body)
        return b"\x12" + (_SMALL[n] if n < 0x80 else varint(n)) + body

    def _span_attributes(self, attributes: Mapping[str, Any]) -> bytes:
        """Repeated ``Span.attributes`` (field 9); scalar pairs come from the cache."""
        pairs = self._pairs
        keys = self._keys
        out = []
        for key, value in attributes.items():
            kind = type(value)
            # Not floats: 0.0 == -0.0 would share an entry.
            cacheable = (kind is str and len(value) <= _CACHED_STRING_MAX) or (
                kind is int or kind is bool
            )
            if cacheable:
                encoded = pairs.get((key, kind, value))
                if encoded is not None:
                    out.append(encoded)
                    continue
            key_field = keys.get(key)
            if key_field is None:
                if len(keys) >= _CACHE_MAX:
                    keys.clear()
                key_field = keys[key] = _field(b"\x0a", _utf8(key))
            encoded = _field(b"\x4a", key_field + _field(b"\x12", any_value(value)))
            if cacheable:
                if len(pairs) >= _CACHE_MAX:
                    pairs.clear()
                pairs[(key, kind, value)] = encoded
            out.append(encoded)
        return b"".join(out)


def _event(event: Any) -> bytes:
    body = b""
    if event.timestamp:
        body += b"\x09" + _pack_fixed64(event.timestamp)
    if event.name:
        body += _field(b"\x12", _utf8(event.name))
    body += attributes_field(b"\x1a", event.attributes)
    if event.dropped_attributes:
        body += b"\x20" + varint(event.dropped_attributes)
    return body


def _link(link: Any) -> bytes:
    context = link.context
    body: bytes = b"\x0a\x10" + context.trace_id.to_bytes(16, "big")
    body += b"\x12\x08" + context.span_id.to_bytes(8, "big")
    # The SDK's encoder leaves a link's trace_state out; so does this one.
    body += attributes_field(b"\x22", link.attributes)
    if link.dropped_attributes:
        body += b"\x28" + varint(link.dropped_attributes)
    return body + (_LINK_FLAGS_REMOTE if context.is_remote else _LINK_FLAGS_LOCAL)


def _status(status: Any) -> bytes:
    """``Span.status`` (field 15), always present, as in the SDK."""
    if status is None:
        return b""
    body = b""
    if status.description:
        body += _field(b"\x12", _utf8(status.description))
    code = status.status_code
    if code is StatusCode.ERROR:
        body += b"\x18\x02"
    elif code is StatusCode.OK:
        body += b"\x18\x01"
    elif code is not StatusCode.UNSET:
        raise Unencodable(status)
    return _field(b"\x7a", body)
