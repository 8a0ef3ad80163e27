"""The array daemon's own metrics (issue 10), read from the engine when Prometheus scrapes.

Pools (capacity and used), each pool's SRA (capacity and used), live generations per BV, the faults
set, and the block I/O bytes (``Read``/``Write``) served since the daemon started.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily

from snaplab.common.metrics import DaemonMetrics, gauge


def register(metrics: DaemonMetrics, engine: Any) -> None:
    def collect() -> Iterator[Any]:
        f = engine.figures()
        pools = f["pools"]
        yield gauge("snaplab_pool_capacity_bytes", "Capacity of each pool", ["pool"],
                    (((name,), cap) for name, cap, _, _, _ in pools))
        yield gauge("snaplab_pool_used_bytes", "Capacity of each pool given to LDs", ["pool"],
                    (((name,), used) for name, _, used, _, _ in pools))
        yield gauge("snaplab_sra_capacity_bytes", "Capacity of each pool's snapshot reserve area (SRA)", ["pool"],
                    (((name,), sra) for name, _, _, sra, _ in pools if sra))
        yield gauge("snaplab_sra_used_bytes", "Bytes of each pool's SRA that snapshots hold", ["pool"],
                    (((name,), used) for name, _, _, sra, used in pools if sra))
        yield gauge("snaplab_generations", "Live snapshot generations of each BV", ["bv"],
                    (((bv,), n) for bv, n in f["generations"]))
        yield gauge("snaplab_faults", "Faults set on the array (1 each), by kind and target", ["kind", "target"],
                    (((kind, target), 1) for kind, target in f["faults"]))
        io = CounterMetricFamily("snaplab_block_io_bytes", "Block I/O bytes served (Read and Write)",
                                 labels=["direction"])
        io.add_metric(["read"], f["io"][0])
        io.add_metric(["write"], f["io"][1])
        yield io

    metrics.collect_with(collect)
