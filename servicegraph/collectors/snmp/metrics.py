"""Prometheus metrics of SNMP discovery, polling and traps.

Registered on the registry the caller passes (never the global default registry), so
creating collectors has no import-time side effects and tests can build as many as they
like.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram

OUTCOMES = ("ok", "partial", "timeout", "auth_failure", "error", "no_credential")


class SnmpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.device_results = Counter(
            "servicegraph_snmp_device_results",
            "Device discoveries by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.device_outcome = Enum(
            "servicegraph_snmp_device_outcome",
            "Outcome of the last discovery of each device.",
            ["target"],
            states=list(OUTCOMES),
            registry=registry,
        )
        self.device_duration = Histogram(
            "servicegraph_snmp_device_duration_seconds",
            "Time to discover one device.",
            buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
            registry=registry,
        )
        self.requests = Counter(
            "servicegraph_snmp_requests", "SNMP requests sent, retries included.", registry=registry
        )
        self.varbinds = Counter(
            "servicegraph_snmp_varbinds", "Variable bindings received.", registry=registry
        )
        self.runs = Counter(
            "servicegraph_snmp_discovery_runs",
            "Discovery runs by result (loaded, failed).",
            ["result"],
            registry=registry,
        )
        self.run_devices = Gauge(
            "servicegraph_snmp_discovery_last_run_devices",
            "Devices of the last run by outcome.",
            ["outcome"],
            registry=registry,
        )
        self.run_timestamp = Gauge(
            "servicegraph_snmp_discovery_last_run_timestamp_seconds",
            "When the last discovery run finished (Unix time).",
            registry=registry,
        )
        self.events = Counter(
            "servicegraph_snmp_events",
            "Monitoring events produced by polling and traps.",
            ["source", "kind", "status"],
            registry=registry,
        )
        self.traps = Counter(
            "servicegraph_snmp_traps_received",
            "Notifications received, by what became of them (event, ignored).",
            ["result"],
            registry=registry,
        )

    def device(
        self, target: str, outcome: str, seconds: float, requests: int, varbinds: int
    ) -> None:
        self.device_results.labels(outcome=outcome).inc()
        self.device_outcome.labels(target=target).state(outcome)
        self.device_duration.observe(seconds)
        self.requests.inc(requests)
        self.varbinds.inc(varbinds)

    def run(self, result: str, outcomes: dict[str, int], finished_at: float) -> None:
        self.runs.labels(result=result).inc()
        for outcome in OUTCOMES:
            self.run_devices.labels(outcome=outcome).set(outcomes.get(outcome, 0))
        self.run_timestamp.set(finished_at)

    def event(self, source: str, kind: str, status: str) -> None:
        self.events.labels(source=source, kind=kind, status=status).inc()
