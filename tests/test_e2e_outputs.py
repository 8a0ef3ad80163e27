"""Output conformance end to end (issue acceptance point 3): what the commands print matches SPEC §8.

The guide's reference lab runs as separate OS processes (`snaplab lab up`); every command is its
own process (the console scripts with SNAPLAB_HOST/SNAPLAB_LAB, `snaplab exec manager -- iSMview`).
Outputs are read the way the clients quoted in SPEC §8 read them: OpenSVC's NEC iSM drivers
(``split(': ')[1]`` per key, the SV line after its type code, ``split(') ')[1].split()[0]`` for the
state, ``strptime`` of the bracketed time, destination LVs by ``split(':')[1]``, ``iSMview -d`` rows
by ``split()``) and Cinder's NEC CLI layer (the state after ``") "``, the BV name at columns 15-39
of the stripped ``LD Name`` line). Each parser and each line grammar is first checked against the
captured sample of SPEC §8, then against the lab's output, and the key columns must line up as in
the sample.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))  # labtools: see its docstring
from labtools import LabRun, Ran, run_on

pytestmark = pytest.mark.timeout(120)

ARRAY = "Tokyo_Customer_DataBase"
TIME_FORMAT = "%Y/%m/%d %H:%M:%S"  # how the clients parse every date
OS_TYPES = ("-", "A2", "A4", "AX", "CX", "LX", "NX", "SX", "WN", "WG")  # SPEC §8 OS type codes
T = r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d"

# -- the captured samples of SPEC §8 -------------------------------------------------------------------

CREATE_SAMPLE = """\
iSMsc_create:Info: iSM19010: iSMsc_create has normally terminated.
   BV:SOURCE_0001         LX
      Special File : -
   SV:SOURCE_0001_SV006D  LX
      Generation : -1
      Status     : snap/active [2014/09/18 05:15:04]
"""

QUERY_SV_SAMPLE = """\
BV Information
    LD Name      : test_src_0000
    Type         : LX
    Special File : /dev/sdc
    State        : normal
    Reserve Area : -

SV Information
  LX:test_src_0000_SV0014    ( -1) snap/active   [2014/03/24 11:16:16] link
"""

DETAIL_SAMPLE = """\
BV Information
    LD Name      : xxxxxxxxxxx_00CC
    Type         : LX
    Special File : /dev/sdaq
    State        : normal
    Reserve Area : -

Pair Information
    SV:LD Name              : xxxxxxxxxxx_00cc_SV00ce
       Type                 : LX
       Generation(Attribute): -1(normal)
       Snap State           : snap/active        [2014/09/09 17:27:45]
       Create   Start Time  : 2014/09/09 17:27:45
       Processing Data Size : -
       Snapshot Data Size   : 47.4GB
       SV Guard             : off
       LV Link Status       : link
    LV:LD Name              : xxxxxxxxxxx_00cc_LV00cf
       Type                 : LX
       Special File         : /dev/sdar
       LV Access            : rw
"""

LINKINFO_SAMPLE = """\
Specified Volume Information
SV:LD Name      : test_src_0000_SV0014
   Type         : LX
   Special File : -
   State        : link   (test_src_0000_LV0064)
   Mode         : nr

Destination Volume Information
    LV:test_src_0000_LV0050     LX link   (test_src_0000_SV0016)    rw
"""

FLUSH_SAMPLE = """\
Flush Start               2001/02/21 12:27:01
              disk11    dev002    WN
       \\\\?\\Volume{37d84cca-2507-11d5-a0f7-00004c714491}\\
              H:

Flush Normal End         2001/02/21 12:27:01
              disk11    dev002    WN
       \\\\?\\Volume{37d84cca-2507-11d5-a0f7-00004c714491}\\
              H:
"""

VIEW_SAMPLE = """\
--- Disk Array List ---
Product ID        Disk Array Name                   Resource State  Monitoring
D1-10             D1_10                             ready           running
"""

SUCCESS = {
    "iSMsc_create": "iSMsc_create:Info: iSM19010: iSMsc_create has normally terminated.",
    "iSMsc_link": "iSMsc_link:Info: iSM20020: iSMsc_link has normally terminated.",
    "iSMsc_unlink": "iSMsc_unlink:Info: iSM20030: iSMsc_unlink has normally terminated.",
}

# -- line grammars: every line has one shape of SPEC §8; the shapes come in the sample's order --------

VOLUME_BLOCK = {  # after the success line of create (and, in the same style, link and unlink)
    "success": r"\w+:Info: iSM\d{5}: \w+ has normally terminated\.",
    "volume": r"   (BV|SV|LV):\S+\s+[A-Z0-9-]{2}",
    "special": r"      Special File : \S+",
    "generation": r"      Generation : -\d+",
    "status": rf"      Status     : snap/\w+ \[{T}\]",
    "state": r"      State        : (link   \(\S+\)|unlink)",
    "mode": r"      Mode         : (rw|ro|nr|na)",
}
CREATE_GRAMMAR = r"success volume special volume generation status"
LINK_GRAMMAR = r"success volume special state mode volume generation status"

BV_INFO = {
    "bv_head": r"BV Information",
    "bv_item": r"    (LD Name |Type    |Special File|State   |Reserve Area)\s*: \S.*",
    "blank": r"",
}
SUMMARY = BV_INFO | {
    "sv_head": r"SV Information",
    "sv_line": rf"  [A-Z0-9-]{{2}}:\S+\s+\(\s*(-\d+|-)\) snap/\w+\s+\[({T}|----/--/-- --:--:--)\] (link|unlink)",
}
SUMMARY_GRAMMAR = r"bv_head( bv_item){5} blank sv_head( sv_line)+"

DETAIL = BV_INFO | {
    "pair_head": r"Pair Information",
    "sv_name": r"    SV:LD Name              : \S+",
    "lv_name": r"    LV:LD Name              : \S+",
    "type": r"       Type                 : [A-Z0-9-]{2}",
    "generation": r"       Generation\(Attribute\): (-\d+|-)\(normal\)",
    "snap_state": rf"       Snap State           : snap/\w+\s+\[({T}|----/--/-- --:--:--)\]",
    "start_time": rf"       Create   Start Time  : ({T}|-)",
    "processing": r"       Processing Data Size : (-|\d+\.\dMB|\d+\.\dGB|\d+\.\dTB)",
    "data_size": r"       Snapshot Data Size   : (-|\d+\.\d(MB|GB|TB))",
    "guard": r"       SV Guard             : (on|off)",
    "link_status": r"       LV Link Status       : (link|unlink)",
    "special": r"       Special File         : \S+",
    "access": r"       LV Access            : (rw|ro|nr|na)",
}
SV_BLOCK = r"sv_name type generation snap_state start_time processing data_size guard link_status"
LV_BLOCK = r"lv_name type( special)? access"
DETAIL_GRAMMAR = rf"bv_head( bv_item){{5}} blank pair_head( {SV_BLOCK}( {LV_BLOCK})?)+"

LINKINFO = {
    "spec_head": r"Specified Volume Information",
    "name": r"(SV|LV|BV|IV):LD Name      : \S+",
    "item": r"   (Type    |Special File|State   |Mode    )\s*: \S.*",
    "blank": r"",
    "dest_head": r"Destination Volume Information",
    "dest": r"    LV:\S+\s+[A-Z0-9-]{2} (link  |unlink) \((\S+|-)\)\s+(rw|ro|nr|na)",
}
LINKINFO_GRAMMAR = r"spec_head name( item){4} blank dest_head( dest)*"

FLUSH = {
    "start": rf"Flush Start\s+{T}",
    "end": rf"Flush Normal End\s+{T}",
    "disk": r"\s+disk\d+\s+\S+\s+W[NG]",
    "volume": r"\s+\\\\\?\\Volume\{[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}\}\\",
    "drive": r"\s+[A-Z]:",
    "blank": r"",
}
FLUSH_GRAMMAR = r"start disk volume drive blank end disk volume drive"

VIEW = {
    "title": r"--- Disk Array List ---",
    "columns": r"Product ID\s+Disk Array Name\s+Resource State\s+Monitoring",
    "row": r"\S+\s+\S+\s+(ready|fault|unknown)\s+(running|stopped)",
}
VIEW_GRAMMAR = r"title columns( row)+"


def grammar(text: str, shapes: dict[str, str], sentence: str) -> list[str]:
    """The shape of every line of ``text`` (each must have one), and the shapes in ``sentence``'s order."""
    kinds = []
    for line in text.rstrip("\n").split("\n"):
        kind = next((k for k, rx in shapes.items() if re.fullmatch(rx, line)), None)
        assert kind is not None, f"line of no SPEC §8 shape: {line!r}\n{text}"
        kinds.append(kind)
    assert re.fullmatch(sentence, " ".join(kinds)), f"{' '.join(kinds)}\n !~ {sentence}\n{text}"
    return kinds


def key_columns(text: str) -> dict[tuple[int, str], int]:
    """(indent, key) -> column of the ``': '`` that ends the key, for every key/value line."""
    out = {}
    for line in text.splitlines():
        if ": " in line and not re.match(r"\w+:Info:", line):
            col = line.index(": ")
            key = line[:col].strip()
            out[(len(line) - len(line.lstrip()), key)] = col
    return out


def same_columns(ours: str, sample: str) -> None:
    """Every key our output shares with the sample ends in the sample's column (fixed-column parsers)."""
    mine, theirs = key_columns(ours), key_columns(sample)
    shared = mine.keys() & theirs.keys()
    assert shared, (ours, sample)
    assert {k: mine[k] for k in shared} == {k: theirs[k] for k in shared}, ours


# -- the clients' parsers (SPEC §8 sources), written as they read the outputs ---------------------------


def query_sv(out: str) -> dict:
    """OpenSVC ``sc_query_ld``: BV keys by ``split(': ')[1]``; SV lines start with an OS type code."""
    data: dict = {"sv": []}
    for line in out.splitlines():
        line = line.strip()
        for key in ("LD Name", "Type", "Special File", "State", "Reserve Area"):
            if line.startswith(key):
                data[key] = line.split(": ")[1]
                break
        else:
            if line.split(":", 1)[0] in OS_TYPES:
                data["sv"].append(line[line.index(":") + 1 :])
    return data


def sv_line_state(svinfo: str) -> str:
    """OpenSVC/SPEC: the state is the token after ``") "``."""
    return svinfo.split(") ")[1].split()[0]


def sv_line_time(svinfo: str) -> datetime:
    """OpenSVC ``get_sv_ts``: the bracketed time."""
    return datetime.strptime(svinfo[svinfo.index("[") + 1 : svinfo.index("]")], TIME_FORMAT)


def cinder_sv_state(out: str, sv: str) -> str | None:
    """Cinder ``query_BV_SV_status``: the lines naming the SV (bash ``read`` strips them), the text
    after the first ``") "``, up to the next blank."""
    text = "\n".join(line.strip() for line in out.splitlines() if sv in line)
    start = text.find(") ")
    return None if start == -1 else text[start + 2 :].split(" ")[0]


def cinder_bv_name(out: str) -> str:
    """Cinder ``get_bvname``: the stripped ``LD Name`` line, columns 15 to 39."""
    line = next(line.strip() for line in out.splitlines() if "LD Name" in line)
    return line[15:39].strip()


def query_detail(out: str) -> dict:
    """OpenSVC ``sc_query_bv_detail`` (every key of a block, not only the ones it keeps): sections by
    heading, ``SV:LD Name`` / ``LV:LD Name`` open a block, values by ``split(': ')[1]``."""
    data: dict = {"bv": {}, "sv": {}, "lv": {}, "order": []}
    section, block = "", {}
    for line in out.split("\n"):
        line = line.strip()
        if line.startswith("BV Information"):
            section = "bv"
        elif line.startswith("Pair Information"):
            section = "pair"
        elif section == "bv" and ": " in line:
            data["bv"][line.split(":")[0].strip()] = line.split(": ")[1]
        elif section == "pair" and line.startswith(("SV:LD Name", "LV:LD Name")):
            kind, name = line[:2].lower(), line.split(": ")[1]
            block = data[kind].setdefault(name, {})
            if kind == "sv":
                data["order"].append(name)
            else:
                data["sv"][data["order"][-1]]["LV"] = name
        elif section == "pair" and ": " in line:
            block[line.split(":")[0].strip()] = line.split(": ")[1]
    return data


def linkinfo(out: str) -> dict:
    """OpenSVC ``sc_linkinfo_ld``: keys by ``split(': ')[1]``, destination LVs by ``split(':')[1]``."""
    data: dict = {"dst": []}
    for line in out.split("\n"):
        if line.startswith(("SV:LD Name", "LV:LD Name", "BV:LD Name")):
            data["LD Name"] = line.split(": ")[1]
        elif line.strip().startswith(("Type", "Special File", "State", "Mode")):
            data[line.split(":")[0].strip()] = line.split(": ")[1]
        elif line.strip().startswith("LV:"):
            data["dst"].append(line.split(":")[1])
    return data


def linked_to(info: dict, lv: str) -> bool:
    """OpenSVC ``__status_link``: exactly one destination names the LV and says ``link``."""
    return len([d for d in info["dst"] if lv in d.split() and "link" in d.split()]) == 1


def view_arrays(out: str) -> list[list[str]]:
    """OpenSVC ``get_arrays``: skip blank, ``---`` and header lines; a row is ``split()``."""
    rows = []
    for line in out.split("\n"):
        if not line or "---" in line or "Product ID" in line:
            continue
        fields = line.split()
        if len(fields) >= 3:
            rows.append(fields)
    return rows


def volume_block(out: str) -> dict[str, dict[str, str]]:
    """The blocks after a success line: ``BV:``/``SV:``/``LV:`` lines open one (name, type), items are
    ``key : value``."""
    blocks: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in out.splitlines()[1:]:
        s = line.strip()
        if s[:3] in ("BV:", "SV:", "LV:"):
            name, type_ = s[3:].split()
            current = blocks[s[:2]] = {"name": name, "type": type_}
        else:
            key, value = s.split(" : ", 1)
            current[key.strip()] = value
    return blocks


def flush_report(out: str) -> list[dict[str, str]]:
    """``iSMrc_flush``: per phase (Start, Normal End) its time, disk, LD, format, volume and drive."""
    phases = []
    for part in out.strip("\n").split("\n\n"):
        head, disk, volume, drive = part.split("\n")
        name, time = re.split(r"\s{2,}", head.strip())
        disk_no, ld, fmt = disk.split()
        phases.append(
            {"phase": name, "time": time, "disk": disk_no, "ld": ld, "format": fmt}
            | {"volume": volume.strip(), "drive": drive.strip()}
        )
    return phases


# -- the SPEC samples themselves: the grammars and parsers are faithful to them --------------------------


def test_grammars_and_parsers_read_the_spec_samples() -> None:
    grammar(CREATE_SAMPLE, VOLUME_BLOCK, CREATE_GRAMMAR)
    blocks = volume_block(CREATE_SAMPLE)
    assert blocks["BV"] == {"name": "SOURCE_0001", "type": "LX", "Special File": "-"}
    assert blocks["SV"]["Generation"] == "-1" and blocks["SV"]["Status"].startswith("snap/active [")

    grammar(QUERY_SV_SAMPLE, SUMMARY, SUMMARY_GRAMMAR)
    q = query_sv(QUERY_SV_SAMPLE)
    assert (q["LD Name"], q["Type"], q["State"], q["Reserve Area"]) == ("test_src_0000", "LX", "normal", "-")
    assert sv_line_state(q["sv"][0]) == "snap/active"
    assert sv_line_time(q["sv"][0]) == datetime(2014, 3, 24, 11, 16, 16)
    assert cinder_sv_state(QUERY_SV_SAMPLE, "test_src_0000_SV0014") == "snap/active"
    assert cinder_bv_name(QUERY_SV_SAMPLE) == "test_src_0000"

    grammar(DETAIL_SAMPLE, DETAIL, DETAIL_GRAMMAR)
    d = query_detail(DETAIL_SAMPLE)
    sv = d["sv"]["xxxxxxxxxxx_00cc_SV00ce"]
    assert sv["Generation(Attribute)"] == "-1(normal)" and sv["Snapshot Data Size"] == "47.4GB"
    assert d["lv"]["xxxxxxxxxxx_00cc_LV00cf"]["LV Access"] == "rw"

    grammar(LINKINFO_SAMPLE, LINKINFO, LINKINFO_GRAMMAR)
    li = linkinfo(LINKINFO_SAMPLE)
    assert li["LD Name"] == "test_src_0000_SV0014" and li["Mode"] == "nr"
    assert linked_to(li, "test_src_0000_LV0050")

    grammar(FLUSH_SAMPLE, FLUSH, FLUSH_GRAMMAR)
    assert [p["phase"] for p in flush_report(FLUSH_SAMPLE)] == ["Flush Start", "Flush Normal End"]

    grammar(VIEW_SAMPLE, VIEW, VIEW_GRAMMAR)
    assert view_arrays(VIEW_SAMPLE) == [["D1-10", "D1_10", "ready", "running"]]


# -- the lab ------------------------------------------------------------------------------------------


class Lab:
    """The module's running lab (labtools' ``LabRun``): host commands as their own processes."""

    def __init__(self, run: LabRun) -> None:
        self.run = run

    def cmd(self, host: str, line: str) -> Ran:
        """One command line on ``host`` (console script with SNAPLAB_HOST/SNAPLAB_LAB); exit status 0."""
        ran = run_on(self.run.folder, host, line, cwd=self.run.root)
        assert ran.code == 0, ran
        assert not ran.stderr, ran
        return ran

    def manager(self, *argv: str) -> str:
        """``snaplab exec manager -- ARGV`` (iSMview with the admin certificate); exit status 0."""
        proc = self.run("exec", "manager", "--", *argv)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        return proc.stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    run = LabRun(tmp_path_factory.mktemp("outputs"))
    try:
        up = run("lab", "up")  # the guide's reference lab, set up as 2.2.1 starts
        assert up.returncode == 0, up.stdout + up.stderr
        yield Lab(run)
    finally:
        run.teardown()


@pytest.fixture(scope="module")
def created(lab: Lab) -> Ran:
    """2.2.1 step 5 on the business server: a cyclic create of bv001 (sv001_01 is held since setup)."""
    return lab.cmd("business01", "iSMsc_create -bv bv001 -bvflg ld -cyclic")


def parse_time(text: str) -> datetime:
    return datetime.strptime(text, TIME_FORMAT)


# -- iSMsc_create ---------------------------------------------------------------------------------------


def test_create_prints_the_success_line_and_the_generation(created: Ran) -> None:
    assert created.lines[0] == SUCCESS["iSMsc_create"]
    grammar(created.stdout, VOLUME_BLOCK, CREATE_GRAMMAR)
    same_columns(created.stdout, CREATE_SAMPLE)
    blocks = volume_block(created.stdout)
    assert blocks["BV"] == {"name": "bv001", "type": "WN", "Special File": "disk6"}  # G: is on disk6
    sv = blocks["SV"]
    assert sv["name"] == "sv001_02" and sv["type"] == "WN"  # the oldest free SV of the set
    assert sv["Generation"] == "-1"
    state, time = re.fullmatch(r"(\S+) \[(.+)\]", sv["Status"]).groups()  # type: ignore[union-attr]
    assert state == "snap/active"
    parse_time(time)
    # the type column of the BV/SV lines where the sample has it
    for ours, theirs in zip(created.lines[1:4:2], CREATE_SAMPLE.splitlines()[1:4:2], strict=True):
        assert ours.rindex(" ") == theirs.rindex(" "), (ours, theirs)


# -- iSMsc_query -summary / -sv SV -svflg ld ------------------------------------------------------------


def test_query_summary_as_opensvc_and_cinder_read_it(lab: Lab, created: Ran) -> None:
    newest = volume_block(created.stdout)["SV"]
    out = lab.cmd("business01", "iSMsc_query -bv bv001 -bvflg ld -summary").stdout
    assert out == lab.cmd("business01", "iSMsc_query -bv bv001 -bvflg ld").stdout  # the default layout
    grammar(out, SUMMARY, SUMMARY_GRAMMAR)
    same_columns(out, QUERY_SV_SAMPLE)
    bv_info = [line.split(" : ") for line in out.split("\n\n")[0].splitlines()[1:]]
    sample_info = [line.split(" : ") for line in QUERY_SV_SAMPLE.split("\n\n")[0].splitlines()[1:]]
    assert [k for k, _ in bv_info] == [k for k, _ in sample_info]  # same keys, order and padding
    q = query_sv(out)
    assert (q["LD Name"], q["Type"], q["Special File"], q["State"]) == ("bv001", "WN", "disk6", "normal")
    assert q["Reserve Area"]
    assert cinder_bv_name(out) == "bv001"
    # one line per SV of the set: live generations newest first, then the free ones
    names = [s.split()[0] for s in q["sv"]]
    assert names == ["sv001_02", "sv001_01", "sv001_03", "sv001_04", "sv001_05", "sv001_06", "sv001_07"]
    states = [sv_line_state(s) for s in q["sv"]]
    assert states == ["snap/active", "snap/active"] + ["snap/deleted"] * 5
    assert [s.split("(")[1].split(")")[0].strip() for s in q["sv"][:2]] == ["-1", "-2"]
    assert all(s.split()[-1] == "unlink" for s in q["sv"])
    assert f"[{newest['Status'].split('[')[1]}" in q["sv"][0]
    assert sv_line_time(q["sv"][0]) >= sv_line_time(q["sv"][1])
    # the sample's columns: "(" , ") " and "[" of an SV line
    sample_sv = QUERY_SV_SAMPLE.splitlines()[-1]
    for line in (x for x in out.splitlines() if x.startswith("  WN:")):
        assert [line.index(c) for c in ("(", ") ", "[")] == [sample_sv.index(c) for c in ("(", ") ", "[")]

    for sv, gen in (("sv001_02", "-1"), ("sv001_01", "-2")):
        # Cinder: -bv BV -bvflg ld -sv SV -svflg ld -summary; OpenSVC: -sv SV -svflg ld
        both = lab.cmd("business01", f"iSMsc_query -bv bv001 -bvflg ld -sv {sv} -svflg ld -summary").stdout
        alone = lab.cmd("business01", f"iSMsc_query -sv {sv} -svflg ld").stdout
        for text in (both, alone):
            grammar(text, SUMMARY, SUMMARY_GRAMMAR)
            assert cinder_sv_state(text, sv) == "snap/active"
            one = query_sv(text)
            assert one["LD Name"] == "bv001" and len(one["sv"]) == 1
            assert one["sv"][0].split()[0] == sv and f"( {gen})" in one["sv"][0]
            assert sv_line_state(one["sv"][0]) == "snap/active"
            sv_line_time(one["sv"][0])
        assert cinder_bv_name(alone) == "bv001"  # how Cinder finds the BV of an SV


# -- iSMsc_query -detail ---------------------------------------------------------------------------------


def test_query_detail_pair_information(lab: Lab, created: Ran) -> None:
    out = lab.cmd("business01", "iSMsc_query -bv bv001 -bvflg ld -detail").stdout
    grammar(out, DETAIL, DETAIL_GRAMMAR)
    same_columns(out, DETAIL_SAMPLE)
    d = query_detail(out)
    assert d["bv"]["LD Name"] == "bv001" and d["bv"]["State"] == "normal"
    assert d["order"][:2] == ["sv001_02", "sv001_01"]
    for sv, gen in (("sv001_02", "-1"), ("sv001_01", "-2")):
        block = d["sv"][sv]
        assert block["Type"] == "WN"
        assert block["Generation(Attribute)"] == f"{gen}(normal)"
        state, time = re.fullmatch(r"(\S+)\s+\[(.+)\]", block["Snap State"]).groups()  # type: ignore[union-attr]
        assert state == "snap/active"
        assert parse_time(time) == parse_time(block["Create   Start Time"])
        assert block["Processing Data Size"] == "-"
        assert re.fullmatch(r"\d+\.\d(MB|GB|TB)", block["Snapshot Data Size"]), block
        assert block["SV Guard"] == "off"
        assert block["LV Link Status"] == "unlink" and "LV" not in block
    # the SVs that hold no snapshot
    for sv in d["order"][2:]:
        assert d["sv"][sv]["Generation(Attribute)"] == "-(normal)"
        assert d["sv"][sv]["Snapshot Data Size"] == "-"
    assert not d["lv"]


# -- iSMsc_link, iSMsc_linkinfo -lcl, iSMsc_unlink --------------------------------------------------------


def test_link_linkinfo_and_unlink(lab: Lab, created: Ran) -> None:
    newest = volume_block(created.stdout)["SV"]["name"]
    # 2.2.1 step 9 on the backup server
    link = lab.cmd("backup01", "iSMsc_link -lv lv001 -lvflg ld -sv bv001.-1 -svflg ld.relgen")
    try:
        assert link.lines[0] == SUCCESS["iSMsc_link"]
        grammar(link.stdout, VOLUME_BLOCK, LINK_GRAMMAR)
        same_columns(link.stdout, CREATE_SAMPLE)
        blocks = volume_block(link.stdout)
        assert blocks["LV"]["name"] == "lv001" and blocks["LV"]["State"] == f"link   ({newest})"
        assert blocks["LV"]["Mode"] == "rw"
        assert blocks["SV"]["name"] == newest and blocks["SV"]["Generation"] == "-1"

        # iSMsc_linkinfo -vol SV -volflg ld -lcl (OpenSVC's link check)
        out = lab.cmd("backup01", f"iSMsc_linkinfo -vol {newest} -volflg ld -lcl").stdout
        grammar(out, LINKINFO, LINKINFO_GRAMMAR)
        same_columns(out, LINKINFO_SAMPLE)
        li = linkinfo(out)
        assert (li["LD Name"], li["Type"], li["Special File"]) == (newest, "WN", "-")
        assert li["State"] == "link   (lv001)" and li["Mode"] == "nr"
        assert linked_to(li, "lv001")
        assert li["dst"][0].split() == ["lv001", "WN", "link", f"({newest})", "rw"]
        sample_dst = LINKINFO_SAMPLE.splitlines()[-1]
        dst = out.splitlines()[-1]
        assert [dst.index(c) for c in (" WN ", " link ", "(")] == [
            sample_dst.index(c) for c in (" LX ", " link ", "(")
        ]
        # The SV the link does not use is unlinked; its destinations are still every LV of the BV with
        # its own link (as in the sample, where SV0014's list shows LVs linked to SV0015 and SV0016).
        other = linkinfo(lab.cmd("backup01", "iSMsc_linkinfo -vol sv001_01 -volflg ld -lcl").stdout)
        assert other["State"] == "unlink" and other["Mode"] == "nr"
        assert [d.split() for d in other["dst"]] == [["lv001", "WN", "link", f"({newest})", "rw"]]

        # -detail while linked: the LV block, with Special File only where the host sees the LV
        for host, special in (("backup01", True), ("business01", False)):
            out = lab.cmd(host, "iSMsc_query -bv bv001 -bvflg ld -detail").stdout
            grammar(out, DETAIL, DETAIL_GRAMMAR)
            same_columns(out, DETAIL_SAMPLE)
            d = query_detail(out)
            assert d["sv"][newest]["LV Link Status"] == "link" and d["sv"][newest]["LV"] == "lv001"
            lv = d["lv"]["lv001"]
            assert lv["Type"] == "WN" and lv["LV Access"] == "rw"
            assert ("Special File" in lv) is special, out
            if special:
                assert re.fullmatch(r"disk\d+", lv["Special File"]), lv
            summary = query_sv(lab.cmd(host, "iSMsc_query -bv bv001 -bvflg ld -summary").stdout)
            assert [s.split()[-1] for s in summary["sv"]][:2] == ["link", "unlink"]
    finally:
        unlink = lab.cmd("backup01", "iSMsc_unlink -lv lv001 -lvflg ld")
    assert unlink.lines[0] == SUCCESS["iSMsc_unlink"]
    grammar(unlink.stdout, VOLUME_BLOCK, LINK_GRAMMAR)
    blocks = volume_block(unlink.stdout)
    assert (blocks["LV"]["State"], blocks["LV"]["Mode"]) == ("unlink", "nr")
    assert blocks["SV"]["name"] == newest
    li = linkinfo(lab.cmd("backup01", f"iSMsc_linkinfo -vol {newest} -volflg ld -lcl").stdout)
    assert li["State"] == "unlink" and not linked_to(li, "lv001")
    assert li["dst"][0].split() == ["lv001", "WN", "unlink", "(-)", "nr"]


# -- iSMrc_flush --------------------------------------------------------------------------------------------


def test_flush_report(lab: Lab) -> None:
    before = datetime.now().replace(microsecond=0)
    out = lab.cmd("business01", "iSMrc_flush -drv G:").stdout
    grammar(out, FLUSH, FLUSH_GRAMMAR)
    start, end = flush_report(out)
    assert (start["phase"], end["phase"]) == ("Flush Start", "Flush Normal End")
    for phase in (start, end):
        assert (phase["disk"], phase["ld"], phase["format"], phase["drive"]) == ("disk6", "bv001", "WN", "G:")
        assert abs((parse_time(phase["time"]) - before).total_seconds()) < 300
    assert parse_time(start["time"]) <= parse_time(end["time"])
    assert start["volume"] == end["volume"]
    # the volume is the one the host's volume list has at G:
    listed = [r.split() for r in lab.cmd("business01", "iSMvollist -a").lines if r.endswith(" G:")]
    assert [r[2] for r in listed] == ["bv001"] and listed[0][-2] == start["volume"]

    # every field starts in the sample's column: time, disk, LD and format, volume, drive
    def starts(line: str) -> list[int]:
        return [m.start() for m in re.finditer(r"(?<!\S)\S", line)]

    for ours, theirs in zip(out.splitlines(), FLUSH_SAMPLE.splitlines(), strict=True):
        assert starts(ours) == starts(theirs), (ours, theirs)


# -- iSMview -d --------------------------------------------------------------------------------------------


def test_ismview_disk_array_list(lab: Lab) -> None:
    out = lab.manager("iSMview", "-d")
    grammar(out, VIEW, VIEW_GRAMMAR)
    lines = out.rstrip("\n").split("\n")
    sample = VIEW_SAMPLE.splitlines()
    assert lines[:2] == sample[:2]  # the title and the column header, as captured
    rows = view_arrays(out)
    assert rows == [["S2800", ARRAY, "ready", "running"]]  # the lab file's product id
    header = sample[1]
    row = lines[2]
    for column, value in zip(
        ("Product ID", "Disk Array Name", "Resource State", "Monitoring"), rows[0], strict=True
    ):
        assert row.index(value) == header.index(column), (row, header)
