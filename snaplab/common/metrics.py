"""Each daemon's Prometheus metrics (issue 10): one registry per daemon, served over HTTP by prometheus-client.

Every daemon has the operations at its gRPC boundary (``snaplab_operations_total`` by operation and
result, ``snaplab_operation_seconds`` histograms; counted by ``rpc_metrics``) and the chaos rules
that fired (``snaplab_chaos_fired_total``). Each daemon adds its own: the manager its routed refusals
by rule, the array its pools, SRA, generations per BV, faults and block I/O bytes, the agent its
flush bytes. Figures read from a daemon's state at scrape time are collectors (:class:`StateCollector`).

The registry is the daemon's own (not prometheus-client's global one), so in-process tests and
benchmarks that run several daemons keep their figures apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("snaplab.common.metrics")

# From a quick look-up to a restore's wait: 0.5 ms to 30 s.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OTHER = "other"  # the operation label of a call outside a daemon's known operations (bounded labels)


class DaemonMetrics:
    """One daemon's registry and the metrics every daemon has; ``serve`` starts its HTTP endpoint."""

    def __init__(self, daemon: str) -> None:
        self.daemon = daemon
        self.registry = CollectorRegistry()
        self.operations = Counter(
            "snaplab_operations",
            "Operations served at the daemon's gRPC boundary, by operation and result (OK, an iSM id or a status)",
            ["operation", "result"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "snaplab_operation_seconds",
            "Time to serve an operation at the daemon's gRPC boundary",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.chaos_fired = Counter(
            "snaplab_chaos_fired",
            "Chaos rules that fired in this daemon, by rule, operation and action",
            ["rule", "operation", "action"],
            registry=self.registry,
        )
        self.port = 0
        self._server: Any = None
        # The labelled children by label values: ``labels()`` takes a lock and builds a key on
        # every call, and ``observe`` runs on every RPC.
        self._counted: dict[tuple[str, str], Any] = {}
        self._timed: dict[str, Any] = {}

    def observe(self, operation: str, result: str, seconds: float) -> None:
        counted = self._counted.get((operation, result))
        if counted is None:
            counted = self._counted[(operation, result)] = self.operations.labels(operation, result)
        timed = self._timed.get(operation)
        if timed is None:
            timed = self._timed[operation] = self.latency.labels(operation)
        counted.inc()
        timed.observe(seconds)

    def chaos(self, firing: Any) -> None:
        """``ChaosEngine.on_fired``: count a firing."""
        self.chaos_fired.labels(str(firing.rule.id), firing.op, firing.rule.action()).inc()

    def counter(self, name: str, text: str, labels: Iterable[str] = ()) -> Counter:
        return Counter(name, text, list(labels), registry=self.registry)

    def collect_with(self, collect: Callable[[], Iterable[Any]]) -> None:
        """Add figures read at scrape time: ``collect`` yields metric families (see :func:`gauge`)."""
        self.registry.register(StateCollector(collect))

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on ``host:port`` (port 0: any free one) in a thread; returns the port."""
        self._server, _thread = start_http_server(port, addr=host, registry=self.registry)
        self.port = int(self._server.server_port)
        return self.port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class StateCollector(Collector):
    """A collector over a callable, so a daemon's state is read when Prometheus scrapes; a failing
    read is logged and gives no figures (a scrape never breaks the daemon)."""

    def __init__(self, collect: Callable[[], Iterable[Any]]) -> None:
        self._collect = collect

    def collect(self) -> Iterable[Any]:
        try:
            return list(self._collect())
        except Exception:
            log.exception("metrics collection failed")
            return []


def gauge(name: str, text: str, labels: list[str], rows: Iterable[tuple[tuple[str, ...], float]]) -> GaugeMetricFamily:
    """A gauge family from ``(label values, value)`` rows."""
    family = GaugeMetricFamily(name, text, labels=labels)
    for values, value in rows:
        family.add_metric(list(values), value)
    return family
