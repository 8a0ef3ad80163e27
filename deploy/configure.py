"""Applying a lab file's configuration: its Configure requests, sent through the manager as ``admin``."""

from __future__ import annotations

import json
from typing import Any

from snaplab.common.rpc import ClientTLS, SnapLabClientError, client_errors, make_channel
from snaplab.v1 import array_pb2, manager_pb2, manager_pb2_grpc

from .errors import LabError, one_line
from .failover import cluster_pins
from .folder import LabFolder, Report
from .spec import ArraySpec, LabSpec

CONFIG_TIMEOUT = 30.0
PINNED_VOLUMES = "pinned_volumes.json"


def configure(lab: LabFolder, spec: LabSpec, runtime: dict[str, Any], report: Report) -> None:
    """Everything the guide does from the iSM client, through the manager as ``admin``: per array
    ports, pools, licences, LDs, SRA, generations, LVs; then the hosts and access control."""
    channel = make_channel(runtime["manager"]["target"], ClientTLS.from_folder(lab.pki, "admin"))
    stub = manager_pb2_grpc.ManagerStub(channel)
    try:
        for a in spec.arrays:
            ops = config_ops(spec, a)
            clusters = {h.name: h.cluster for h in spec.hosts}
            for where, request in ops:
                # A host's cluster membership is the lab file's, told the manager with its definition.
                cluster = clusters.get(request.register_host.name, "") if request.HasField("register_host") else ""
                try:
                    with client_errors():
                        stub.Configure(
                            manager_pb2.ManagedConfig(array=a.name, request=request, cluster=cluster),
                            timeout=CONFIG_TIMEOUT,
                        )
                except SnapLabClientError as exc:
                    raise LabError(
                        f"{spec.source}:{where}: the manager refused it: {one_line(exc)}"
                    ) from None
            report(f"array {a.name}: {len(ops)} configuration operations applied through the manager")
    finally:
        channel.close()


def pin_volumes(lab: LabFolder, spec: LabSpec) -> None:
    # The agent reads this at start (docs in deploy/README.md): volume GUIDs the host's mount
    # manager must give these partitions instead of random ones.
    for h in spec.hosts:
        path = lab.host_state(h.name) / "etc" / PINNED_VOLUMES
        path.parent.mkdir(parents=True, exist_ok=True)
        pins = [v.as_json() for v in h.volumes]
        own = {(p["array"], p["ld"], p["partition"]) for p in pins}
        pins += [p for p in cluster_pins(spec, h.name) if (p["array"], p["ld"], p["partition"]) not in own]
        path.write_text(json.dumps(pins, indent=1) + "\n")


def config_ops(spec: LabSpec, a: ArraySpec) -> list[tuple[str, array_pb2.ConfigRequest]]:
    """The Configure requests that build array ``a`` of ``spec``, in an order the array accepts
    (licences before generations: building SVs checks the DynamicSnapVolume capacity), each with
    where it comes from in the lab file."""
    R = array_pb2.ConfigRequest
    w = f"arrays[{a.name}]"
    ops: list[tuple[str, array_pb2.ConfigRequest]] = []
    for p in a.ports:
        ops.append(
            (
                f"{w}.ports[{p.name}]",
                R(add_port=array_pb2.AddPort(director=p.director, port=p.port, name=p.name)),
            )
        )
    for pool in a.pools:
        m = array_pb2.BindPool(number=pool.number, name=pool.name, kind=pool.kind, capacity=pool.capacity)
        ops.append((f"{w}.pools[{pool.number}]", R(bind_pool=m)))
    for lic in a.licences:
        ops.append(
            (
                f"{w}.licences[{lic.product}]",
                R(set_licence=array_pb2.SetLicence(product=lic.product, capacity=lic.capacity)),
            )
        )
    for ld in a.lds:
        m = array_pb2.BindLd(
            name=ld.name,
            capacity=ld.capacity,
            pool=str(ld.pool),
            format=ld.format,
            attr=ld.attr,
            **_num(ld.number),
        )
        ops.append((f"{w}.lds[{ld.name}]", R(bind_ld=m)))
    pools_with_sra: set[int] = set()
    for i, s in enumerate(a.sra):
        m = array_pb2.BuildSra(
            pool=str(s.pool),
            capacity=s.capacity,
            sdv_name=s.name or "",
            extend=s.pool in pools_with_sra,
            **_num(s.number),
        )
        pools_with_sra.add(s.pool)
        ops.append((f"{w}.sra[{i}]", R(build_sra=m)))
    for pool in (p for p in a.pools if p.sra_policy_set):  # SnapLab extension (issue 14)
        m = array_pb2.SetSraPolicy(
            pool=str(pool.number), policy=pool.sra_policy or "", warn_percents=list(pool.sra_warn),
            set_warn=bool(pool.sra_warn), queue_timeout_seconds=pool.sra_queue_timeout or 0.0,
        )
        ops.append((f"{w}.pools[{pool.number}].sra_policy", R(set_sra_policy=m)))
    for i, g in enumerate(a.generations):
        # One request per SV: each may or may not carry its own LD number.
        for sv in g.svs:
            m = array_pb2.AddGenerations(
                bv=g.bv,
                pool=str(g.pool),
                count=1,
                sv_names=[sv.name] if sv.name else [],
                numbers=[sv.number] if sv.number is not None else [],
            )
            ops.append((f"{w}.generations[{i}] ({sv.name or g.bv})", R(add_generations=m)))
    for lv in a.lvs:
        ops.append(
            (f"{w}.lvs[{lv.name}]", R(bind_lv=array_pb2.BindLv(bv=lv.bv, name=lv.name, **_num(lv.number))))
        )
    for g in a.groups:  # SnapLab extension (issue 14): consistency groups, once their BVs have SVs
        ops.append((f"{w}.groups[{g.name}]", R(group_define=array_pb2.GroupDefine(name=g.name, bvs=list(g.bvs)))))
    ports = {p.name for p in a.ports}
    for h in spec.hosts:
        m = array_pb2.RegisterHost(
            name=h.name, wwns=h.wwns, ports=[p for p in h.ports if p in ports], platform=h.platform
        )
        ops.append((f"hosts[{h.name}]", R(register_host=m)))
    for acc in (x for x in spec.access if x.array == a.name):
        m = array_pb2.AssignAccess(ld=acc.ld, port=acc.port or "", wwn=acc.wwn or "")
        ops.append((f"access ({acc.ld} to {acc.path})", R(assign_access=m)))
    return ops


def _num(number: int | None) -> dict[str, int]:
    return {} if number is None else {"number": number}
