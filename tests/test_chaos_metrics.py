"""Chaos rules and metrics (issue 10 parts 4 and 5), in one real lab (`snaplab lab up` of a small lab file):
rules added with `snaplab chaos`, seen by the lab's own commands and by gRPC clients with the lab's
certificates; each daemon's Prometheus endpoint scraped and parsed with prometheus-client's parser."""

from __future__ import annotations

import random
import stat
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from labtools import LabRun, alive, run_on

from snaplab.common.errors import E
from snaplab.deploy import chaos
from snaplab.common.rpc import ClientTLS, SnapLabClientError

pytestmark = pytest.mark.timeout(240)

ARRAY = "Chaos_Array"
LAB = f"""
    [[arrays]]
    name = "{ARRAY}"
    ports = ["00h/00h P_BIZ", "01h/00h P_BAK"]
    pools = [
      {{ number = 0, kind = "basic", capacity = "4GiB" }},
      {{ number = 1, kind = "dynamic", capacity = "4GiB" }},
    ]
    sra = [{{ pool = 1, capacity = "256MiB", name = "SDV1", number = "0100h" }}]
    lds = [
      {{ number = "0030h", name = "bv001", capacity = "64MiB", pool = 0 }},
      {{ number = "002ah", name = "BK_CV", capacity = "16MiB", pool = 0, attr = "cv" }},
    ]
    generations = [{{ bv = "bv001", pool = 1, svs = ["sv001_01"], numbers = ["0031h"] }}]
    licences = ["DynamicSnapVolume", "AccessControl"]

    [[access]]
    ld = "bv001"
    port = "P_BIZ"

    [[access]]
    ld = "BK_CV"
    port = "P_BAK"

    [[hosts]]
    name = "business01"
    role = "business"
    wwns = ["10:00:00:00:c9:00:00:01"]
    ports = ["P_BIZ"]

    [[setup]]
    host = "business01"
    commands = ["DISKPART"]
    stdin = \"\"\"
    select disk 1
    create partition primary
    format fs=ntfs quick label=bv001
    assign letter=G
    \"\"\"

    [[setup]]
    host = "business01"
    commands = ["iSMvollist -cr"]
"""
NOT_SET = E.FAULT_NOT_SET.msg_id  # ClearFault of a fault never set
BUSY = "iSMsc_create:Error: iSM31005: Specified logical disk is in use. (bv001)"
CREATE = "iSMsc_create -bv bv001 -bvflg ld -cyclic"


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabRun]:
    run = LabRun(tmp_path_factory.mktemp("chaos"))
    try:
        up = run("lab", "up", str(run.write("chaos.toml", LAB)), timeout=180)
        assert up.returncode == 0, up.stdout + up.stderr
        yield run
    finally:
        run.teardown()


@pytest.fixture(autouse=True)
def no_rules(lab: LabRun) -> Iterator[None]:
    yield
    chaos.clear_rules(lab.folder)  # the Python API `snaplab chaos` is made of (deploy/chaos.py)


def ok(lab: LabRun, *args: str) -> str:
    ran = lab(*args)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    return ran.stdout


def refused(lab: LabRun, *args: str) -> str:
    """The one error line of a refused `snaplab` command (exit 1, no traceback)."""
    ran = lab(*args)
    assert ran.returncode == 1 and "Traceback" not in ran.stderr, ran.stdout + ran.stderr
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1, ran.stderr
    return lines[0]


def admin_array(lab: LabRun):  # noqa: ANN201 - ArrayClient, imported lazily as the other lab tests do
    from snaplab.san.array_client import ArrayClient

    rt = lab.runtime()
    assert rt is not None
    return ArrayClient(rt["arrays"][ARRAY]["target"], ClientTLS.from_folder(lab.folder / "pki", "admin"), timeout=10)


def manager(lab: LabRun, principal: str):  # noqa: ANN201
    from snaplab.manager.client import ManagerClient

    rt = lab.runtime()
    assert rt is not None
    return ManagerClient(rt["manager"]["target"], ClientTLS.from_folder(lab.folder / "pki", principal), timeout=10)


def chaos_events(lab: LabRun, after: int, want: int, timeout: float = 5.0) -> list[str]:
    """The iSM31339 events after ``after``, once there are ``want`` of them (the manager reads the journals)."""
    deadline = time.monotonic() + timeout
    with manager(lab, "admin") as m:
        while True:
            texts = [e.text for e in m.events(after_seq=after) if e.msg_id == "iSM31339"]
            if len(texts) >= want or time.monotonic() > deadline:
                return texts
            time.sleep(0.1)


def last_seq(lab: LabRun) -> int:
    with manager(lab, "admin") as m:
        events = m.events()
    return events[-1].seq if events else 0


def clear_fault_calls(lab: LabRun, n: int) -> list[str]:
    """``n`` ClearFault calls of a fault never set (only this test calls ClearFault): the array's own
    refusal (NOT_SET) or what a rule made of the call (its status name when it has no iSM id)."""
    out = []
    with admin_array(lab) as a:
        for _ in range(n):
            try:
                a.clear_fault("licence", "DynamicSnapVolume")
                out.append("OK")
            except SnapLabClientError as exc:
                out.append(exc.msg_id or exc.code.name)
    return out


def scrape(endpoint: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a daemon's /metrics: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://{endpoint}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def endpoints(lab: LabRun) -> dict[str, str]:
    rt = lab.runtime()
    assert rt is not None
    return {p["name"]: p["metrics"] for p in rt["processes"]}


# -- chaos -------------------------------------------------------------------------------------------


def test_busy_once_then_a_retry_loop_succeeds(lab: LabRun) -> None:
    """A rule makes iSMsc_create fail once with iSM31005, printed as the array's own refusal prints,
    whether the manager refuses the routed operation or the host's agent the command; a retry loop
    then succeeds; each firing is an event of the manager's log and a metric of its daemon."""
    seq = last_seq(lab)
    for target in ("manager", "host:business01"):
        if target == "manager":
            out = ok(lab, "chaos", "add", "--target", target, "--op", "iSMsc_create", "--error", "iSM31005",
                     "--count", "1")
            assert out.startswith("chaos rule 1 added: manager iSMsc_create: error iSM31005"), out
        else:
            assert chaos.add_rule(lab.folder, target, "iSMsc_create", error="iSM31005", count=1).id == 2
        attempts = []
        for _ in range(3):  # the retry loop of a backup script
            ran = run_on(lab.folder, "business01", CREATE, cwd=lab.root)
            attempts.append(ran)
            if ran.code == 0:
                break
            time.sleep(0.1)
        assert [r.code for r in attempts] == [1, 0], "\n".join(map(str, attempts))
        assert attempts[0].stderr == BUSY + "\n" and attempts[0].stdout == "", attempts[0]
        assert "iSM19010" in attempts[1].stdout
    events = chaos_events(lab, seq, 2)
    assert len(events) == 2, events
    assert "rule" in events[0] and "on manager iSMsc_create: error iSM31005" in events[0], events
    assert "on host:business01 iSMsc_create: error iSM31005" in events[1], events
    listed = ok(lab, "chaos", "list").splitlines()
    assert listed[0].split() == ["ID", "TARGET", "OP", "PROBABILITY", "ACTION", "COUNT", "NTH", "SEED", "FIRED"]
    assert [line.split()[-1] for line in listed[1:]] == ["1", "1"], listed  # count 1 honoured
    fired = scrape(endpoints(lab)["manager"])
    assert any(k[0] == "snaplab_chaos_fired_total" and v == 1 for k, v in fired.items()), fired
    folder = lab.folder / "run" / "chaos"  # this user's alone, as the whole lab folder (issue 8)
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in [folder, *folder.iterdir()]} == {
        "chaos": 0o700, ".lock": 0o600, "rules.json": 0o600, "fired-manager.jsonl": 0o600,
        "fired-host_business01.jsonl": 0o600}
    assert ok(lab, "chaos", "clear").strip() == "chaos rules removed: 2"


def test_latency_is_measurable_and_count_honoured(lab: LabRun) -> None:
    ok(lab, "chaos", "add", "--target", "array:" + ARRAY, "--op", "ClearFault", "--latency", "400ms", "--count", "2")
    times = []
    for _ in range(4):
        start = time.perf_counter()
        assert clear_fault_calls(lab, 1) == [NOT_SET]  # delayed, then answered as ever
        times.append(time.perf_counter() - start)
    assert min(times[:2]) >= 0.4, times  # a rule's delay is at least what it says
    assert max(times[2:]) < 0.4, times  # and only on its first COUNT calls
    assert ok(lab, "chaos", "list").splitlines()[1].split()[-1] == "2"


def test_probability_zero_never_fires_and_a_seed_reproduces(lab: LabRun) -> None:
    ok(lab, "chaos", "add", "--target", "array:" + ARRAY, "--op", "ClearFault", "--probability", "0",
       "--error", "UNAVAILABLE")
    assert set(clear_fault_calls(lab, 30)) == {NOT_SET}
    assert [c.fired for c in chaos.list_rules(lab.folder)] == [0]
    chaos.clear_rules(lab.folder)
    # p = 0.5 with seed 7: the rule fires on exactly the calls random.Random(7) says, every time it is added
    draws = random.Random(7)
    expected = ["UNAVAILABLE" if draws.random() < 0.5 else "own" for _ in range(16)]
    seen = []
    for _ in range(2):  # operation names match without regard to case
        chaos.add_rule(lab.folder, "array:" + ARRAY, "clearfault", probability="0.5", error="UNAVAILABLE", seed=7)
        seen.append(["UNAVAILABLE" if r == "UNAVAILABLE" else "own" for r in clear_fault_calls(lab, 16)])
        chaos.clear_rules(lab.folder)
    assert seen == [expected, expected]


def test_crash_kills_the_daemon_on_the_nth_call_once(lab: LabRun) -> None:
    rt = lab.runtime()
    assert rt is not None
    pid = next(p["pid"] for p in rt["processes"] if p["kind"] == "array")
    seq = last_seq(lab)
    ok(lab, "chaos", "add", "--target", "array:" + ARRAY, "--op", "ClearFault", "--crash", "--nth", "3")
    first = clear_fault_calls(lab, 3)
    assert first == [NOT_SET, NOT_SET, "UNAVAILABLE"], first  # the connection dies with the daemon
    deadline = time.monotonic() + 5
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(pid)
    log = (lab.folder / "run" / f"array-{ARRAY}.log").read_text()
    assert "chaos rule" in log and "crashing on ClearFault" in log
    # `lab up` brings the array back; the rule fired once and does not fire again
    ok(lab, "lab", "up")
    again = clear_fault_calls(lab, 4)
    assert again == [NOT_SET] * 4, again
    events = chaos_events(lab, seq, 1)
    assert any(f"on array:{ARRAY} ClearFault: crash" in t for t in events), events


def test_bad_rules_are_refused_with_one_ism_line(lab: LabRun) -> None:
    add = ("chaos", "add", "--target")
    cases = [
        ((*add, "host:nohost", "--op", "iSMsc_create", "--error", "iSM31005"),
         "iSM31337: Specified chaos target is not a process of the lab. (host:nohost)"),
        ((*add, "array:" + ARRAY, "--op", "iSMsc_bogus", "--error", "iSM31005"),
         f"iSM31338: Specified operation is not an operation of the chaos target. (iSMsc_bogus of array:{ARRAY})"),
        ((*add, "manager", "--op", "Route", "--error", "iSM31005", "--probability", "1.5"),
         "iSM31335: Specified chaos rule is invalid. (probability 1.5 is not a number from 0 to 1)"),
    ]
    for args, text in cases:
        line = refused(lab, *args)
        assert line.startswith("snaplab: error: iSM313") and text in line, (args, line)
    # the same checks, through the Python API the command is made of
    api_cases = [
        (("manager", "Route"), {"error": "iSM31005", "probability": "nan"}, "probability"),
        (("manager", "Route"), {"error": "iSM99999"}, "error 'iSM99999' is neither"),
        (("manager", "Route"), {"latency": "20x"}, "latency '20x' is not a duration like 200ms or 1.5s"),
        (("manager", "Route"), {}, "a rule needs --error, --latency or --crash"),
        (("manager", "Route"), {"error": "UNAVAILABLE", "count": "0"}, "count 0 is not"),
        (("array:nosuch", "Create"), {"crash": True}, "array:nosuch"),
        (("host:business01", "Lookup"), {"crash": True}, "Lookup of host:business01"),
    ]
    with pytest.raises(chaos.ChaosRuleError, match=r"^iSM31336: Specified chaos rule does not exist\. \(99\)$"):
        chaos.clear_rules(lab.folder, 99)
    for (target, op), kwargs, text in api_cases:
        with pytest.raises(chaos.ChaosRuleError) as refusal:
            chaos.add_rule(lab.folder, target, op, **kwargs)
        assert refusal.value.msg_id.startswith("iSM313") and text in str(refusal.value), (kwargs, refusal.value)
    assert chaos.list_rules(lab.folder) == []  # nothing stored


def test_inject_fault_targets_are_validated(lab: LabRun) -> None:
    with manager(lab, "admin") as m:
        for kind, target, msg_id in (("sra_full", "Pool9999", "iSM31001"), ("bv_failure", "nobv", "iSM19003")):
            with pytest.raises(SnapLabClientError) as refusal:
                m.inject_fault(kind, target, array=ARRAY)
            assert refusal.value.msg_id == msg_id and refusal.value.code == grpc.StatusCode.NOT_FOUND
    with admin_array(lab) as a:
        assert list(a.describe().faults) == []  # nothing stored


# -- metrics -----------------------------------------------------------------------------------------


def test_every_daemon_serves_metrics_that_move_with_operations(lab: LabRun) -> None:
    eps = endpoints(lab)
    assert set(eps) == {ARRAY, "manager", "business01"} and all(eps.values()), eps
    status = lab("lab", "status").stdout
    assert "METRICS" in status.splitlines()[1] and all(ep in status for ep in eps.values()), status
    before = {name: scrape(ep) for name, ep in eps.items()}

    def value(samples: dict, name: str, **labels: str) -> float:
        return samples.get((name, tuple(sorted(labels.items()))), 0.0)

    ran = run_on(lab.folder, "business01", "iSMsc_query -bv bv001 -bvflg ld", cwd=lab.root)
    assert ran.code == 0, ran
    (lab.folder / "hosts" / "business01" / "mnt" / "G" / "metrics.txt").write_bytes(b"x" * 100_000)
    ran = run_on(lab.folder, "business01", "iSMrc_flush -drv G:", cwd=lab.root)
    assert ran.code == 0, ran
    with manager(lab, "business01") as m:  # a volume business01 does not reach: refused by routing rule B3
        from snaplab.v1 import array_pb2

        with pytest.raises(SnapLabClientError):
            m.route("BK_CV", query=array_pb2.QueryRequest(bv="bv001"))
    after = {name: scrape(ep) for name, ep in eps.items()}

    op = "snaplab_operations_total"
    for daemon in ("manager", "business01"):
        grew = value(after[daemon], op, operation="iSMsc_query", result="OK") - value(
            before[daemon], op, operation="iSMsc_query", result="OK")
        assert grew == 1, daemon
        assert value(after[daemon], "snaplab_operation_seconds_count", operation="iSMsc_query") >= 1
    assert value(after["manager"], "snaplab_routed_refusals_total", rule="iSM31042") == 1 + value(
        before["manager"], "snaplab_routed_refusals_total", rule="iSM31042")
    assert value(after["business01"], "snaplab_flush_bytes_total", host="business01") > value(
        before["business01"], "snaplab_flush_bytes_total", host="business01")
    arr_before, arr = before[ARRAY], after[ARRAY]
    assert value(arr, "snaplab_block_io_bytes_total", direction="write") > value(
        arr_before, "snaplab_block_io_bytes_total", direction="write")
    assert value(arr, "snaplab_pool_capacity_bytes", pool="Pool0001") == 4 * 2**30
    assert value(arr, "snaplab_sra_capacity_bytes", pool="Pool0001") == 256 * 2**20
    assert ("snaplab_sra_used_bytes", (("pool", "Pool0001"),)) in arr
    assert ("snaplab_generations", (("bv", "bv001"),)) in arr
    assert value(arr, "snaplab_operation_seconds_count", operation="Write") >= 1
    with manager(lab, "admin") as m:  # a fault set is a figure while it is set
        m.inject_fault("sra_full", "Pool0001", array=ARRAY)
        try:
            assert value(scrape(eps[ARRAY]), "snaplab_faults", kind="sra_full", target="Pool0001") == 1
        finally:
            m.clear_fault("sra_full", "Pool0001", array=ARRAY)
    assert ("snaplab_faults", (("kind", "sra_full"), ("target", "Pool0001"))) not in scrape(eps[ARRAY])
