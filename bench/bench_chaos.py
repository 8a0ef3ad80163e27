#!/usr/bin/env python3
"""Routed throughput with chaos rules of probability 0 vs no rule: what a rule that never fires costs.

The set-up of bench_routing.py (real array and manager daemons in their own processes, mTLS, 16
client processes each enrolled as its own host with its own BV; --quick 2), both daemons started
with ``--chaos-dir`` as a lab starts them. Each client runs ``Manager.Route`` of a Query of its BV
(what ``iSMsc_query`` sends) back to back for 2 s (--quick 0.2 s). Rounds alternate, 5 of each
(--quick 1):

- rule: two rules of probability 0 that match every call: on the manager, ``iSMsc_query`` (each
  routed call draws its probability in the manager's interceptor); on the array, ``Query`` (each
  look-up of the manager's look-up socket draws its own);
- no rule: the rules file emptied (the interceptors stay installed, as in any lab: they see no rule).

The rules are written with ``snaplab.common.chaos.RulesFile`` between rounds; the daemons pick each
change up at their next call. After each rule round the journals must show no firing.
Target: median routed ops/s with the rules / without >= 0.95.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
from pathlib import Path

import bench_routing as br
import common as c
import grpc_common as g

TARGET = 0.95


class _InProcess:
    """One host's routed Queries back to back from this process (what one worker process does)."""

    def __init__(self, target: str, tls: object) -> None:
        from snaplab.manager.client import ManagerClient
        from snaplab.v1 import array_pb2, manager_pb2

        self.client = ManagerClient(target, tls)  # type: ignore[arg-type]
        self.request = manager_pb2.ControlRequest(via=br.bv_name(0), query=array_pb2.QueryRequest(bv=br.bv_name(0)))

    def run(self, _op: str, seconds: float) -> tuple[int, int]:
        import grpc

        count = errors = 0
        end = c.now() + seconds
        while c.now() < end:
            try:
                self.client.stub.Route(self.request, timeout=30)
                count += 1
            except grpc.RpcError:
                errors += 1
        return count, errors


def _decide_cost(folder: Path, calls: int = 20000) -> str:
    """Context: what one call's rule check costs, with a p=0 rule that matches and with none."""
    from snaplab.common.chaos import ChaosEngine, RulesFile, Rule

    out = []
    for label, rule in (("no rule", None), ("1 rule p=0", Rule(0, "manager", "iSMsc_query", 0.0, "iSM31005"))):
        RulesFile(folder).clear()
        if rule is not None:
            RulesFile(folder).add(rule)
        engine = ChaosEngine(folder, "manager")
        t = c.now()
        for _ in range(calls):
            engine.decide(("Route", "iSMsc_query"), "bv01")
        out.append(f"{label} {1e6 * (c.now() - t) / calls:.1f} us")
    return ", ".join(out)


def main(argv: list[str] | None = None) -> int:
    def extra(p):
        p.add_argument("--hosts", type=int, default=None, help="concurrent hosts (default 16; --quick 1)")
        p.add_argument("--seconds", type=float, default=None, help="length of a round")

    args = c.parse_args(__doc__.splitlines()[0], extra, argv=argv)
    nhosts = args.hosts or (1 if args.quick else 16)
    rounds = args.reps or (1 if args.quick else 5)
    seconds = args.seconds or (0.2 if args.quick else 2.0)
    rep = c.Report("bench_chaos", "routed ops/s with chaos rules of probability 0 vs no rule", args)
    rep.line(f"{nhosts} client processes (one host each), {rounds} x {seconds:g} s per side, alternated")

    from snaplab.array.process import ArrayProcess, make_lab_certs
    from snaplab.deploy.lab import LabSpec, config_ops
    from snaplab.manager.client import ManagerClient
    from snaplab.manager.process import ManagerProcess

    from snaplab.common.chaos import RulesFile, Rule, journal_name
    from snaplab.common.rpc import ClientTLS
    from snaplab.v1 import array_pb2, manager_pb2

    tmp = Path(tempfile.mkdtemp(prefix="snaplab-bench-chaos-"))
    chaos = tmp / "chaos"
    rules = RulesFile(chaos)
    certs = g.BenchCerts(tmp / "pki")
    make_lab_certs(certs.folder, [("manager", "manager")] + [(br.host_name(i), "host") for i in range(1, nhosts)])
    boundary = ["--chaos-dir", str(chaos)]
    workers = None
    try:
        with ArrayProcess(tmp / "array", certs=certs.folder, name=br.ARRAY, log_level="WARNING",
                          extra_args=boundary).start() as array, \
                ManagerProcess(tmp / "manager", certs=certs.folder, arrays={br.ARRAY: array.target},
                               log_level="WARNING", extra_args=boundary).start() as manager, \
                (g.EchoProcess(tmp / "echo", certs).start() if nhosts > 1 else contextlib.nullcontext()) as echo:
            spec = LabSpec.parse(br.lab_text(nhosts), "bench_chaos")
            with ManagerClient(manager.target, ClientTLS.from_folder(certs.folder, "admin")) as admin:
                for _where, request in config_ops(spec, spec.arrays[0]):
                    admin._call("Configure", manager_pb2.ManagedConfig(array=br.ARRAY, request=request))
            for i in range(nhosts):
                with ManagerClient(manager.target, ClientTLS.from_folder(certs.folder, br.host_name(i))) as h:
                    h.enrol("business", wwns=[br.host_wwn(i)], ports=[br.PORT])
                    h.route(br.bv_name(i), create=array_pb2.CreateRequest(bv=br.bv_name(i), cyclic=True))
            if nhosts > 1:  # bench_routing's client processes (they also warm up on the Echo server)
                workers = br.Workers(nhosts, certs.folder, manager.target, f"127.0.0.1:{echo.port}", 64)
                run = workers.run
            else:  # one host (--quick): the calls from this process, no client process to start
                run = _InProcess(manager.target, ClientTLS.from_folder(certs.folder, br.host_name(0))).run
            tput: dict[str, list[float]] = {"rule": [], "none": []}
            for r in range(rounds):
                for side in (("none", "rule") if r % 2 == 0 else ("rule", "none")):
                    rules.clear()
                    if side == "rule":
                        rules.add(Rule(0, "manager", "iSMsc_query", probability=0.0, error="iSM31005"))
                        rules.add(Rule(0, f"array:{br.ARRAY}", "Query", probability=0.0, error="UNAVAILABLE"))
                    count, errors = run("route", seconds)
                    if errors:
                        raise RuntimeError(f"{errors} failed routed calls in round {r + 1} ({side})")
                    tput[side].append(count / seconds)
                    rep.line(f"round {r + 1} {side:<4}: {count:6d} calls, {count / seconds:7.1f} ops/s")
            rep.figure("ChaosEngine.decide per call (in this process)", _decide_cost(tmp / "decide"))
            fired = [p.name for p in chaos.glob(journal_name("*"))]
            if fired:
                raise RuntimeError(f"a rule of probability 0 fired: {fired}")
            med_rule, med_none = c.median(tput["rule"]), c.median(tput["none"])
            for side, label in (("rule", "with 2 rules of p=0"), ("none", "without rules")):
                rep.figure(f"routed ops/s {label}", f"median {c.median(tput[side]):.1f} (rounds: "
                           + ", ".join(f"{x:.0f}" for x in tput[side]) + ")")
            rep.ratio("chaos_p0_throughput", med_rule / med_none, ">=", TARGET,
                      f"median routed ops/s with rules {med_rule:.1f} / without {med_none:.1f} ({nhosts} clients)")
            if workers is not None:
                workers.close()
                workers = None
    finally:
        if workers is not None:
            workers.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return rep.finish()


if __name__ == "__main__":
    sys.exit(main())
