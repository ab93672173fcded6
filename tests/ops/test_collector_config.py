"""The shipped Collector configurations, checked as data (no Collector binary here).

Proves: every component a pipeline names is defined; every defined component is used and
exists in the pinned otelcol-contrib manifest (collector/components.yaml) under its current
type name; memory_limiter comes first in every pipeline; connectors join two pipelines; no
batch processor (exporters batch through sending_queue); receivers listen on all interfaces;
every ${env:...} placeholder is documented in docs/operations.md. In the agent, span_metrics'
exemplars reach Prometheus (its exporter speaks OpenMetrics, and the Prometheus job scrapes
it), and the service_graph connector feeds the same exporter, pairing query spans by the
attribute otel_django really sets.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.support.ops import COLLECTOR, DOCS, PROMETHEUS_DIR, ROOT, load_yaml

CONFIGS = ["agent.yaml", "gateway.yaml"]
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
KINDS = ["receivers", "processors", "exporters", "connectors", "extensions"]
ENV_PLACEHOLDER = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def component_type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    return load_yaml(COLLECTOR / "components.yaml")


@pytest.fixture(params=CONFIGS)
def config(request: pytest.FixtureRequest) -> dict[str, Any]:
    data = load_yaml(COLLECTOR / request.param)
    assert isinstance(data, dict)
    return data


def pipelines(config: dict[str, Any]) -> dict[str, dict[str, list[str]]]:
    result = config["service"]["pipelines"]
    assert result, "no pipelines"
    return result


def test_manifest_names_its_source(manifest: dict[str, Any]) -> None:
    assert manifest["distribution"] == "otelcol-contrib"
    assert re.fullmatch(r"\d+\.\d+\.\d+", manifest["manifest_version"])
    assert manifest["image"].endswith(":" + manifest["manifest_version"])
    for kind in KINDS:
        for name, entry in manifest["components"][kind].items():
            # Go module path: .../<kind>/<name><kind> (the last segment names the component)
            module = entry["gomod"].rsplit("/", 1)[-1]
            assert module.endswith(kind.rstrip("s")), (kind, name, module)
            # An old name is an alias of the current one, never listed as a component itself.
            assert entry.get("deprecated_type") not in manifest["components"][kind], name


def test_every_component_is_in_the_manifest(
    config: dict[str, Any], manifest: dict[str, Any]
) -> None:
    for kind in KINDS:
        known = set(manifest["components"][kind])
        for component_id in config.get(kind) or {}:
            assert component_type(component_id) in known, f"{kind}: {component_id}"


def test_no_deprecated_type_names(config: dict[str, Any], manifest: dict[str, Any]) -> None:
    for kind in KINDS:
        old = {
            e["deprecated_type"]
            for e in manifest["components"][kind].values()
            if "deprecated_type" in e
        }
        used = {component_type(c) for c in config.get(kind) or {}}
        assert not used & old, f"{kind} uses deprecated names {used & old}"


def test_pipelines_reference_defined_components(config: dict[str, Any]) -> None:
    receivers = set(config.get("receivers") or {})
    processors = set(config.get("processors") or {})
    exporters = set(config.get("exporters") or {})
    connectors = set(config.get("connectors") or {})
    for name, pipeline in pipelines(config).items():
        assert component_type(name) in {"traces", "metrics", "logs"}, name
        assert pipeline["receivers"], name
        assert pipeline["exporters"], name
        assert set(pipeline["receivers"]) <= receivers | connectors, name
        assert set(pipeline.get("processors", [])) <= processors, name
        assert set(pipeline["exporters"]) <= exporters | connectors, name
    assert set(config["service"].get("extensions", [])) <= set(config.get("extensions") or {})


def test_every_defined_component_is_used(config: dict[str, Any]) -> None:
    used: set[str] = set()
    for pipeline in pipelines(config).values():
        for key in ("receivers", "processors", "exporters"):
            used |= set(pipeline.get(key, []))
    for kind in ("receivers", "processors", "exporters", "connectors"):
        unused = set(config.get(kind) or {}) - used
        assert not unused, f"defined but unused {kind}: {unused}"
    assert set(config.get("extensions") or {}) == set(config["service"]["extensions"])


def test_memory_limiter_first_and_no_batch_processor(config: dict[str, Any]) -> None:
    for name, pipeline in pipelines(config).items():
        processors = pipeline.get("processors", [])
        assert processors and component_type(processors[0]) == "memory_limiter", name
        assert "batch" not in {component_type(p) for p in processors}, name
    limiter = config["processors"]["memory_limiter"]
    assert limiter["check_interval"]
    assert limiter["limit_percentage"] > limiter["spike_limit_percentage"]


def test_connectors_join_two_pipelines(config: dict[str, Any]) -> None:
    for connector in config.get("connectors") or {}:
        as_exporter = [n for n, p in pipelines(config).items() if connector in p["exporters"]]
        as_receiver = [n for n, p in pipelines(config).items() if connector in p["receivers"]]
        assert as_exporter and as_receiver, connector
        assert set(as_exporter) != set(as_receiver), connector


def test_network_exporters_batch_through_sending_queue(config: dict[str, Any]) -> None:
    for exporter_id, settings in (config.get("exporters") or {}).items():
        if component_type(exporter_id) in {"otlp_grpc", "otlp_http"}:
            queue = settings["sending_queue"]
            assert queue["enabled"] is True and "batch" in queue, exporter_id
            assert queue["batch"]["min_size"] <= queue["queue_size"], exporter_id


def test_receivers_listen_on_all_interfaces(config: dict[str, Any]) -> None:
    for receiver_id, settings in config["receivers"].items():
        for protocol in settings["protocols"].values():
            assert protocol["endpoint"].startswith("0.0.0.0:"), receiver_id
    assert config["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"


def documented_env_vars() -> set[str]:
    return set(re.findall(r"`([A-Z][A-Z0-9_]+)`", DOCS.read_text(encoding="utf-8")))


@pytest.mark.parametrize("name", CONFIGS)
def test_env_placeholders_are_documented(name: str) -> None:
    text = (COLLECTOR / name).read_text(encoding="utf-8")
    assert "${" in text
    # Only the ${env:NAME} form: bare ${NAME} and $NAME are deprecated or ambiguous.
    assert not re.search(r"\$\{(?!env:)", text), "use ${env:NAME}"
    placeholders = ENV_PLACEHOLDER.findall(text)
    assert placeholders
    documented = documented_env_vars()
    for variable, _default in placeholders:
        assert variable in documented, f"{name}: ${{env:{variable}}} is not in {DOCS.name}"


def test_agent_pipeline_shape() -> None:
    agent = load_yaml(COLLECTOR / "agent.yaml")
    p = pipelines(agent)
    assert p["traces"]["processors"] == ["memory_limiter", "resource_detection", "redaction"]
    assert p["traces"]["exporters"] == ["otlp_grpc/traces", "span_metrics", "service_graph"]
    assert p["metrics"]["receivers"] == ["otlp", "span_metrics", "service_graph"]
    assert p["metrics"]["exporters"] == ["prometheus"]
    assert "redaction" in p["logs"]["processors"]
    assert agent["exporters"]["otlp_http/logs"]["endpoint"].endswith(":-http://loki:3100/otlp}")
    patterns = " ".join(agent["processors"]["redaction"]["blocked_key_patterns"])
    for key in ("password", "token", "secret", "authorization", "cookie"):
        assert key in patterns, key
    assert agent["processors"]["redaction"]["allow_all_keys"] is True


def test_redaction_patterns_match_sensitive_keys_only() -> None:
    agent = load_yaml(COLLECTOR / "agent.yaml")
    # RE2 and Python agree on these simple patterns.
    patterns = [re.compile(p) for p in agent["processors"]["redaction"]["blocked_key_patterns"]]

    def blocked(key: str) -> bool:
        return any(p.fullmatch(key) for p in patterns)

    for key in (
        "http.request.header.authorization",
        "db.password",
        "Set-Cookie",
        "user.api_key",
        "app.client_secret",
        "http.request.header.x_csrftoken",
        "session_id",
    ):
        assert blocked(key), key
    for key in (
        "http.route",
        "db.query.text",
        "url.path",
        "http.response.status_code",
        "db.collection.name",
        "service.name",
    ):
        assert not blocked(key), key


def test_gateway_tail_sampling_and_trace_id_routing() -> None:
    gateway = load_yaml(COLLECTOR / "gateway.yaml")
    balancing = gateway["exporters"]["load_balancing"]
    assert balancing["routing_key"] == "traceID"
    assert "dns" in balancing["resolver"]
    policies = {p["type"]: p for p in gateway["processors"]["tail_sampling"]["policies"]}
    assert policies["status_code"]["status_code"]["status_codes"] == ["ERROR"]
    assert "threshold_ms" in policies["latency"]["latency"]
    assert "sampling_percentage" in policies["probabilistic"]["probabilistic"]
    p = pipelines(gateway)
    route = next(v for k, v in p.items() if "load_balancing" in v["exporters"])
    sample = next(v for k, v in p.items() if "tail_sampling" in v.get("processors", []))
    # The routing pipeline must not sample: only the owner of a trace sees all its spans.
    assert "tail_sampling" not in route.get("processors", [])
    port = str(balancing["resolver"]["dns"]["port"])
    sampling_receivers = [gateway["receivers"][r] for r in sample["receivers"]]
    assert any(
        proto["endpoint"].endswith(":" + port)
        for receiver in sampling_receivers
        for proto in receiver["protocols"].values()
    )


def metrics_exporters_fed_by(config: dict[str, Any], connector: str) -> list[str]:
    return [
        exporter
        for pipeline in pipelines(config).values()
        if connector in pipeline["receivers"]
        for exporter in pipeline["exporters"]
    ]


def test_span_metrics_exemplars_reach_prometheus() -> None:
    agent = load_yaml(COLLECTOR / "agent.yaml")
    assert agent["connectors"]["span_metrics"]["exemplars"]["enabled"] is True
    exporters = metrics_exporters_fed_by(agent, "span_metrics")
    assert exporters == ["prometheus"]
    exporter = agent["exporters"]["prometheus"]
    # Exemplars exist only in OpenMetrics; without this the exporter drops them.
    assert exporter["enable_open_metrics"] is True
    port = exporter["endpoint"].rsplit(":", 1)[1].rstrip("}")
    prometheus = load_yaml(PROMETHEUS_CONFIG)
    [job] = [j for j in prometheus["scrape_configs"] if j["job_name"] == "otel-collector"]
    assert f"otel-collector:{port}" in job["static_configs"][0]["targets"]


def test_service_graph_feeds_the_service_map() -> None:
    agent = load_yaml(COLLECTOR / "agent.yaml")
    graph = agent["connectors"]["service_graph"]
    traces = pipelines(agent)["traces"]
    assert "service_graph" in traces["exporters"]
    # Before any sampling: the agent's traces pipeline has no sampler.
    assert not [p for p in traces["processors"] if "sampling" in p]
    assert metrics_exporters_fed_by(agent, "service_graph") == ["prometheus"]
    # otel_django's query spans name their database with the stable attribute.
    source = (ROOT / "otel_django" / "db" / "django.py").read_text(encoding="utf-8")
    assert '"db.namespace"' in source
    assert graph["database_name_attributes"][0] == "db.namespace"
    assert "db.namespace" in graph["virtual_node_peer_attributes"]
    assert graph["store"]["ttl"] and graph["store"]["max_items"] > 0
