"""The output layouts of agent/formats.py against the captured samples of SPEC §8, and parsed the way
the quoted clients parse them (OpenSVC's NEC iSM drivers, the Cinder NEC driver's command layer)."""

from __future__ import annotations

import re

import pytest

from snaplab.common import snapshot_layouts as formats
from snaplab.san.blocks import BLOCK
from snaplab.v1 import array_pb2 as pb

GiB = 1 << 30


def lines(text: str) -> list[str]:
    """A sample as lines (the samples are written from column 0), without trailing whitespace."""
    return [r.rstrip() for r in text.strip("\n").split("\n")]


def same(produced: list[str], sample: str) -> None:
    assert [r.rstrip() for r in produced] == lines(sample)


def gen(sv: str, bv: str, rel: int | None, state: str = "snap/active", time: str = "", **kw) -> pb.Generation:
    return pb.Generation(
        sv=sv,
        bv=bv,
        format=kw.pop("format", "LX"),
        has_relgen=rel is not None,
        relgen=rel or 0,
        attribute="normal",
        state=state,
        state_time=time,
        **kw,
    )


# ------------------------------------------------------------------------------- the samples
CREATE_SAMPLE = """
   BV:SOURCE_0001         LX
      Special File : -
   SV:SOURCE_0001_SV006D  LX
      Generation : -1
      Status     : snap/active [2014/09/18 05:15:04]
"""

SUMMARY_SAMPLE = """
BV Information
    LD Name      : test_src_0000
    Type         : LX
    Special File : /dev/sdc
    State        : normal
    Reserve Area : -

SV Information
  LX:test_src_0000_SV0014    ( -1) snap/active   [2014/03/24 11:16:16] link
"""

DETAIL_SAMPLE = """
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
    SV:LD Name              : xxxxxxxxxxx_00cc_SV00cd
       Type                 : LX
       Generation(Attribute): -2(normal)
       Snap State           : snap/active        [2014/09/09 17:19:12]
       Create   Start Time  : 2014/09/09 17:19:12
       Processing Data Size : -
       Snapshot Data Size   : 11.6GB
       SV Guard             : off
       LV Link Status       : link
    LV:LD Name              : xxxxxxxxxxx_00cc_LV00d0
       Type                 : LX
       LV Access            : rw
"""

LINKINFO_SAMPLE = """
Specified Volume Information
SV:LD Name      : test_src_0000_SV0014
   Type         : LX
   Special File : -
   State        : link   (test_src_0000_LV0064)
   Mode         : nr

Destination Volume Information
    LV:test_src_0000_LV0050     LX link   (test_src_0000_SV0016)    rw
    LV:test_src_0000_LV005A     LX link   (test_src_0000_SV0015)    rw
    LV:test_src_0000_LV0064     LX link   (test_src_0000_SV0014)    rw
"""


def summary_query() -> pb.QueryReply:
    return pb.QueryReply(
        bv="test_src_0000",
        format="LX",
        state="normal",
        reserve_area="-",
        generations=[
            gen(
                "test_src_0000_SV0014",
                "test_src_0000",
                -1,
                time="2014/03/24 11:16:16",
                link="link",
                lv="test_src_0000_LV0064",
                lv_mode="rw",
            )
        ],
    )


def detail_query() -> pb.QueryReply:
    bv = "xxxxxxxxxxx_00CC"
    return pb.QueryReply(
        bv=bv,
        format="LX",
        state="normal",
        reserve_area="-",
        generations=[
            gen(
                "xxxxxxxxxxx_00cc_SV00ce",
                bv,
                -1,
                time="2014/09/09 17:27:45",
                create_time="2014/09/09 17:27:45",
                data_size=int(47.4 * GiB),
                link="link",
                lv="xxxxxxxxxxx_00cc_LV00cf",
                lv_mode="rw",
            ),
            gen(
                "xxxxxxxxxxx_00cc_SV00cd",
                bv,
                -2,
                time="2014/09/09 17:19:12",
                create_time="2014/09/09 17:19:12",
                data_size=int(11.6 * GiB),
                link="link",
                lv="xxxxxxxxxxx_00cc_LV00d0",
                lv_mode="rw",
            ),
        ],
        lvs=[
            pb.LvState(lv="xxxxxxxxxxx_00cc_LV00cf", link="link", mode="rw"),
            pb.LvState(lv="xxxxxxxxxxx_00cc_LV00d0", link="link", mode="rw"),
        ],
    )


def linkinfo_family() -> pb.QueryReply:
    bv = "test_src_0000"
    svs = {
        "test_src_0000_SV0016": "test_src_0000_LV0050",
        "test_src_0000_SV0015": "test_src_0000_LV005A",
        "test_src_0000_SV0014": "test_src_0000_LV0064",
    }
    return pb.QueryReply(
        bv=bv,
        format="LX",
        state="normal",
        reserve_area="-",
        generations=[
            gen(sv, bv, -1 - i, link="link", lv=lv, lv_mode="rw") for i, (sv, lv) in enumerate(svs.items())
        ],
        lvs=[pb.LvState(lv=lv, link="link", mode="rw") for lv in sorted(svs.values())],
    )


SV0014_INFO = pb.LinkInfo(
    volume="test_src_0000_SV0014",
    type="SV",
    format="LX",
    state="link",
    links=[pb.LinkEntry(lv="test_src_0000_LV0064", target="test_src_0000_SV0014", kind="sv", mode="rw")],
)


# ------------------------------------------------------------------------------- layouts
def test_create_block_matches_sample() -> None:
    g = gen("SOURCE_0001_SV006D", "SOURCE_0001", -1, time="2014/09/18 05:15:04")
    same(formats.generation_block(g, {}), CREATE_SAMPLE)


def test_query_summary_matches_sample() -> None:
    same(formats.query_summary(summary_query(), {"test_src_0000": "/dev/sdc"}), SUMMARY_SAMPLE)


def test_query_summary_for_one_sv_shows_only_its_line() -> None:
    q = summary_query()
    q.generations.append(gen("test_src_0000_SV0015", "test_src_0000", -2, time="2014/03/23 11:16:16"))
    assert len(formats.query_summary(q, {})) == 10
    same(formats.query_summary(q, {"test_src_0000": "/dev/sdc"}, ["test_src_0000_SV0014"]), SUMMARY_SAMPLE)


def test_query_detail_matches_sample() -> None:
    special = {"xxxxxxxxxxx_00CC": "/dev/sdaq", "xxxxxxxxxxx_00cc_LV00cf": "/dev/sdar"}
    same(formats.query_detail(detail_query(), special), DETAIL_SAMPLE)


def test_query_detail_of_the_spec_excerpt() -> None:
    """SPEC §8 quotes the first SV block: the same lines as the sample's head."""
    special = {"xxxxxxxxxxx_00CC": "/dev/sdaq", "xxxxxxxxxxx_00cc_LV00cf": "/dev/sdar"}
    out = formats.query_detail(detail_query(), special, ["xxxxxxxxxxx_00cc_SV00ce"])
    assert [r.rstrip() for r in out] == lines(DETAIL_SAMPLE)[:21]


def test_linkinfo_matches_sample() -> None:
    dest = formats.destinations_of(linkinfo_family())
    same(formats.linkinfo(SV0014_INFO, {}, dest), LINKINFO_SAMPLE)


def test_linkinfo_spec_excerpt_one_destination() -> None:
    dest = [pb.LinkEntry(lv="test_src_0000_LV0050", target="test_src_0000_SV0016", kind="sv", mode="rw")]
    assert [r.rstrip() for r in formats.linkinfo(SV0014_INFO, {}, dest)] == lines(LINKINFO_SAMPLE)[:9]


def test_windows_special_files() -> None:
    vol = "\\\\?\\Volume{37d84cca-2507-11d5-a0f7-00004c714491}\\"
    g = gen("sv001_1", "bv001", -1, format="WN", time="2001/02/21 12:27:01")
    out = formats.generation_block(g, {"bv001": "disk3"})
    assert out[1] == "      Special File : disk3"
    q = pb.QueryReply(
        bv="bv001",
        format="WN",
        state="normal",
        reserve_area="-",
        generations=[gen("sv001_1", "bv001", -1, format="WN", link="link", lv="lv001", lv_mode="rw")],
    )
    detail = formats.query_detail(q, {"bv001": "disk3", "lv001": vol})
    assert f"       Special File         : {vol}" in detail
    assert "    Special File : disk3" in detail


@pytest.mark.parametrize(
    "nbytes, text",
    [
        (0, "0.0MB"),
        (BLOCK, "0.1MB"),
        (100 << 20, "100.0MB"),
        (int(1023.94 * (1 << 20)), "1023.9MB"),
        (int(1023.96 * (1 << 20)), "1.0GB"),
        (int(47.4 * GiB), "47.4GB"),
        (1024 * GiB, "1.0TB"),
        (3 << 40, "3.0TB"),
    ],
)
def test_size_rule(nbytes: int, text: str) -> None:
    assert formats.size_text(nbytes) == text


def test_unused_sv_and_restore_progress() -> None:
    q = pb.QueryReply(
        bv="bv001",
        format="WN",
        state="restoring",
        reserve_area="DYN1",
        generations=[
            gen(
                "sv001_1",
                "bv001",
                -1,
                state="rst/exec",
                format="WN",
                time="2001/02/21 12:27:01",
                create_time="2001/02/21 12:00:00",
                data_size=BLOCK,
                restore_total=100,
                restore_done=36,
                link="unlink",
            ),
            gen("sv001_2", "bv001", None, state="snap/deleted", format="WN", link="unlink"),
        ],
    )
    summary = formats.query_summary(q, {})
    assert summary[-2] == "  WN:sv001_1                 ( -1) rst/exec      [2001/02/21 12:27:01] unlink"
    assert summary[-1] == "  WN:sv001_2                 (  -) snap/deleted  [----/--/-- --:--:--] unlink"
    detail = formats.query_detail(q, {})
    assert "       Processing Data Size : 4.0MB" in detail  # 64 blocks of 64 KiB still to copy
    assert "       Generation(Attribute): -(normal)" in detail
    assert detail.count("       Snapshot Data Size   : -") == 1
    assert not any(r.startswith("    LV:") for r in detail)


def test_link_and_unlink_blocks() -> None:
    info = pb.LinkInfo(
        volume="lv001",
        type="LV",
        format="WN",
        state="link",
        links=[pb.LinkEntry(lv="lv001", target="sv001_1", kind="sv", mode="rw")],
    )
    g = gen("sv001_1", "bv001", -1, format="WN", time="2001/02/21 12:27:01", link="link", lv="lv001")
    assert formats.link_block(info, {"lv001": "disk2"}, linked=True, generation=g) == [
        "   LV:lv001               WN",
        "      Special File : disk2",
        "      State        : link   (sv001_1)",
        "      Mode         : rw",
        "   SV:sv001_1             WN",
        "      Generation : -1",
        "      Status     : snap/active [2001/02/21 12:27:01]",
    ]
    out = formats.link_block(info, {}, linked=False)
    assert out[2:5] == [
        "      State        : unlink",
        "      Mode         : nr",
        "   SV:sv001_1             WN",
    ]
    assert len(out) == 5
    bv_info = pb.LinkInfo(
        volume="lv001",
        type="LV",
        format="WN",
        state="link",
        links=[pb.LinkEntry(lv="lv001", target="bv001", kind="bv", mode="rw")],
    )
    assert formats.link_block(bv_info, {}, linked=True, bv_state="normal")[4:] == [
        "   BV:bv001               WN",
        "      Special File : -",
        "      State        : normal",
    ]


def test_linkinfo_modes_and_unlinked_destinations() -> None:
    lv = pb.LinkInfo(volume="lv001", type="LV", format="WN", state="unlink")
    out = formats.linkinfo(lv, {"lv001": "disk2"})
    assert out[4:6] == ["   State        : unlink", "   Mode         : nr"]
    assert out[-1] == "Destination Volume Information"
    bv = pb.LinkInfo(
        volume="bv001",
        type="BV",
        format="WN",
        state="link",
        links=[pb.LinkEntry(lv="lv001", target="bv001", kind="bv", mode="rw")],
    )
    assert formats.volume_mode(bv) == "nr"
    q = pb.QueryReply(
        bv="bv001",
        format="WN",
        bv_link_lv="lv001",
        lvs=[pb.LvState(lv="lv001", link="link", mode="rw"), pb.LvState(lv="lv002", link="unlink")],
    )
    dest = [formats.destination_line(x, "WN") for x in formats.destinations_of(q)]
    assert dest == [
        "    LV:lv001" + " " * 20 + "WN link   (bv001)" + " " * 19 + "rw",
        "    LV:lv002" + " " * 20 + "WN unlink (-)" + " " * 23 + "nr",
    ]


def test_long_names_keep_a_separating_space() -> None:
    name = "x" * 24  # the longest LD name the array takes
    g = gen(name + "_S", name, -10, time="2014/03/24 11:16:16")
    line = formats.summary_line(g)
    assert line == f"  LX:{name}_S (-10) snap/active   [2014/03/24 11:16:16] -"
    assert formats.generation_block(g, {})[0] == f"   BV:{name} LX"


# ------------------------------------------------------------------------------- parsed as clients do
def opensvc_query(out: str) -> dict:
    """OpenSVC's reading of ``iSMsc_query -sv SV -svflg ld``: stripped lines, ``key: value``; SV lines
    start with an OS type code and a colon."""
    data: dict = {"sv": []}
    for line in out.splitlines():
        line = line.strip()
        for key in ("LD Name", "Type", "Special File", "State", "Reserve Area"):
            if line.startswith(key):
                data[key] = line.split(": ")[1]
        if line.split(":", 1)[0] in ("-", "A2", "A4", "AX", "LX", "NX", "SX", "WN", "WG"):
            data["sv"].append(line[line.index(":") + 1 :])
    return data


def cinder_state(out: str, sv: str) -> str | None:
    """Cinder's ``query_BV_SV_status``: the lines naming the SV (read by a shell, so stripped), then
    the token after the first ``") "``."""
    text = "\n".join(line.strip() for line in out.splitlines() if sv in line)
    start = text.find(") ")
    return None if start == -1 else text[start + 2 :].split(" ")[0]


def cinder_bvname(out: str) -> str:
    """Cinder's ``get_bvname``: the first ``LD Name`` line, stripped, characters 15 to 39."""
    found = [line.strip() for line in out.splitlines() if "LD Name" in line]
    return found[0][15:39].strip()


def test_summary_parsed_by_opensvc_and_cinder() -> None:
    out = "\n".join(formats.query_summary(summary_query(), {"test_src_0000": "/dev/sdc"}))
    data = opensvc_query(out)
    assert data["LD Name"] == "test_src_0000" and data["State"] == "normal" and data["Reserve Area"] == "-"
    assert data["Special File"] == "/dev/sdc" and data["Type"] == "LX"
    assert data["sv"] == ["test_src_0000_SV0014    ( -1) snap/active   [2014/03/24 11:16:16] link"]
    assert cinder_state(out, "test_src_0000_SV0014") == "snap/active"
    assert cinder_bvname(out) == "test_src_0000"


@pytest.mark.parametrize("state", ["snap/active", "rst/exec", "snap/deleted", "snap/fault"])
def test_state_token_after_parenthesis(state: str) -> None:
    for rel in (-1, -12, -123, None):
        q = summary_query()
        q.generations[0].state = state
        q.generations[0].has_relgen = rel is not None
        q.generations[0].relgen = rel or 0
        out = "\n".join(formats.query_summary(q, {}))
        assert cinder_state(out, "test_src_0000_SV0014") == state


def test_detail_parsed_by_opensvc() -> None:
    special = {"xxxxxxxxxxx_00CC": "/dev/sdaq", "xxxxxxxxxxx_00cc_LV00cf": "/dev/sdar"}
    out = "\n".join(formats.query_detail(detail_query(), special))
    data: dict = {"sv": {}, "lv": {}}
    section = name = ""
    for line in out.split("\n"):
        line = line.strip()
        if line.startswith("BV Information"):
            section = "bvinfo"
        elif line.startswith("Pair Information"):
            section = "pairinfo"
        elif section == "bvinfo" and line.startswith("LD Name"):
            data["LD Name"] = line.split(": ")[1]
        elif section.startswith("pairinfo") and line.startswith("SV:LD Name"):
            name, section = line.split(": ")[1], "pairinfo_sv"
            data["sv"][name] = {}
        elif section == "pairinfo_sv" and line.startswith("Snap State"):
            data["sv"][name]["Snap State"] = line.split(": ")[1]
        elif section.startswith("pairinfo") and line.startswith("LV:LD Name"):
            name, section = line.split(": ")[1], "pairinfo_lv"
            data["lv"][name] = {}
        elif section == "pairinfo_lv" and line.startswith("Type"):
            data["lv"][name]["Type"] = line.split(": ")[1]
    assert data["LD Name"] == "xxxxxxxxxxx_00CC"
    assert data["sv"]["xxxxxxxxxxx_00cc_SV00ce"]["Snap State"] == "snap/active        [2014/09/09 17:27:45]"
    assert data["lv"] == {
        "xxxxxxxxxxx_00cc_LV00cf": {"Type": "LX"},
        "xxxxxxxxxxx_00cc_LV00d0": {"Type": "LX"},
    }


def test_detail_parsed_by_regex() -> None:
    """A Cinder-style reader: regular expressions over the whole output."""
    out = "\n".join(formats.query_detail(detail_query(), {}))
    gens = re.findall(r"Generation\(Attribute\): (-?\d+)\((\w+)\)", out)
    assert gens == [("-1", "normal"), ("-2", "normal")]
    states = re.findall(r"Snap State\s+: (\S+)\s+\[(\d{4}/\d\d/\d\d \d\d:\d\d:\d\d)\]", out)
    assert states == [("snap/active", "2014/09/09 17:27:45"), ("snap/active", "2014/09/09 17:19:12")]
    assert re.findall(r"LV Link Status\s+: (\w+)", out) == ["link", "link"]
    assert re.findall(r"Snapshot Data Size\s+: ([\d.]+)(MB|GB|TB)", out) == [("47.4", "GB"), ("11.6", "GB")]
    assert re.findall(r"SV Guard\s+: (on|off)", out) == ["off", "off"]


def test_linkinfo_parsed_by_opensvc() -> None:
    out = "\n".join(formats.linkinfo(SV0014_INFO, {}, formats.destinations_of(linkinfo_family())))
    data: dict = {"dst": []}
    for line in out.split("\n"):
        if line.startswith("SV:LD Name"):
            data["SV:LD Name"] = line.split(": ")[1]
        elif line.strip().startswith(("Type", "Special File", "State", "Mode")):
            data[line.strip().split(" ")[0]] = line.split(": ")[1]
        elif line.strip().startswith("LV:"):
            data["dst"].append(line.split(":")[1])
    assert data == {
        "SV:LD Name": "test_src_0000_SV0014",
        "Type": "LX",
        "Special": "-",
        "State": "link   (test_src_0000_LV0064)",
        "Mode": "nr",
        "dst": [
            "test_src_0000_LV0050     LX link   (test_src_0000_SV0016)    rw",
            "test_src_0000_LV005A     LX link   (test_src_0000_SV0015)    rw",
            "test_src_0000_LV0064     LX link   (test_src_0000_SV0014)    rw",
        ],
    }


def test_create_block_key_value_lines() -> None:
    g = gen("SOURCE_0001_SV006D", "SOURCE_0001", -1, time="2014/09/18 05:15:04")
    kv = {
        k.strip(): v
        for k, v in (line.split(" : ", 1) for line in formats.generation_block(g, {}) if " : " in line)
    }
    assert kv == {"Special File": "-", "Generation": "-1", "Status": "snap/active [2014/09/18 05:15:04]"}
