"""Text layouts of the SnapControl snapshot commands (SPEC §8): pure functions, proto messages in, lines out.

Users' scripts parse these outputs, so every layout is one template below, aligned as in the captured
samples of SPEC §8 (OpenSVC and Cinder parse them). Inputs are the array's replies
(``snaplab.v1.array_pb2`` ``Generation``, ``QueryReply``, ``LinkInfo``) and ``special``: what
``Special File`` shows for each LD name on this host (on Windows ``disk3`` or ``\\\\?\\Volume{…}\\``);
an LD missing from it shows ``-`` (an LV block of ``-detail`` then has no ``Special File`` line at all).

Value rules, kept stable because parsers depend on them:

- Dates are ``yyyy/mm/dd hh:mm:ss`` as the array gives them; an unknown date is ``----/--/-- --:--:--``
  inside brackets and ``-`` elsewhere.
- Relative generation ``-1`` is the newest; an SV of the set that holds no snapshot shows ``-``.
- ``Type`` is the usage format (``WN``, ``WG``, ``LX`` …); an LV has the format of its BV (A2).
- ``Snapshot Data Size``: the generation's share of the SRA with one decimal, in binary units
  (1 MB = 2**20 bytes): MB below 1024.0MB after rounding, GB below 1024.0GB, else TB; ``0.0MB``
  for a snapshot without differences yet, ``-`` for an SV that holds no snapshot.
- ``Processing Data Size``: while a restore runs (``rst/exec``) the data it still has to copy, in
  the same units; ``-`` otherwise.
- ``Mode`` of ``iSMsc_linkinfo`` is the access state of the volume itself: an SV is never accessible
  by a host (``nr``); an LV has its link's access restriction, or ``nr`` while unlinked; a BV is
  ``rw``, or ``nr`` while it is linked to an LV (then reachable only through the LV); other LDs ``rw``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from snaplab.san.blocks import BLOCK
from snaplab.v1 import array_pb2 as pb

NO_TIME = "----/--/-- --:--:--"
STATE_RESTORING = "rst/exec"

# ----------------------------------------------------------------------------------- templates
# A ``{x:<N} `` field is x padded to N characters and then one space: columns line up as in the
# samples and a name longer than the column still keeps one space before the next field.

# Blocks after the success line of iSMsc_create/delete/restore/wait/svguard/link/unlink
# (SPEC §8 "After the success line of iSMsc_create"). Keys are aligned within each block.
VOLUME_LINE = "   {kind}:{name:<19} {type}"
VOLUME_ITEM = "      {key:<{width}} : {value}"

# iSMsc_query -summary and the -sv SV -svflg ld form.
INFO_HEAD_BV = "BV Information"
INFO_HEAD_SV = "SV Information"
INFO_HEAD_PAIR = "Pair Information"
INFO_ITEM = "    {key:<12} : {value}"
SUMMARY_SV_LINE = "  {type}:{name:<23} ({relgen:>3}) {state:<13} [{time}] {link}"

# iSMsc_query -detail: one SV block per SV of the set, each followed by the block of its LV.
DETAIL_HEAD = "    {kind}:{key:<21}: {value}"
DETAIL_ITEM = "       {key:<21}: {value}"
DETAIL_SNAP_STATE = "{state:<18} [{time}]"
DETAIL_GENERATION = "{relgen}({attribute})"

# iSMsc_linkinfo -vol V -volflg F [-lcl].
LINKINFO_HEAD_SPECIFIED = "Specified Volume Information"
LINKINFO_HEAD_DESTINATION = "Destination Volume Information"
LINKINFO_HEAD = "{kind}:{key:<12} : {value}"
LINKINFO_ITEM = "   {key:<12} : {value}"
LINKINFO_DESTINATION = "    {kind}:{name:<24} {type} {state:<6} {other:<25} {mode}"
LINK_STATE = "{state:<6} ({other})"

MB = 1 << 20


# ----------------------------------------------------------------------------------- values
def size_text(nbytes: int) -> str:
    """``47.4GB``, ``0.0MB`` … (module docstring: binary units, one decimal, MB/GB/TB)."""
    for unit, scale in (("MB", MB), ("GB", MB << 10)):
        value = nbytes / scale
        if round(value, 1) < 1024:
            return f"{value:.1f}{unit}"
    return f"{nbytes / (MB << 20):.1f}TB"


def relgen_text(gen: pb.Generation) -> str:
    return str(gen.relgen) if gen.has_relgen else "-"


def _time(text: str) -> str:
    return text or NO_TIME


def _or_dash(text: str) -> str:
    return text or "-"


def _block(kind: str, name: str, type_: str, items: Sequence[tuple[str, str]]) -> list[str]:
    width = max((len(k) for k, _ in items), default=0)
    return [VOLUME_LINE.format(kind=kind, name=name, type=_or_dash(type_))] + [
        VOLUME_ITEM.format(key=k, width=width, value=v) for k, v in items
    ]


def generation_items(gen: pb.Generation, *, guard: bool = False) -> list[tuple[str, str]]:
    items = [
        ("Generation", relgen_text(gen)),
        ("Status", f"{gen.state} [{_time(gen.state_time)}]"),
    ]
    if guard:
        items.append(("SV Guard", "on" if gen.guard else "off"))
    return items


# ----------------------------------------------------------------------------------- blocks
def generation_block(gen: pb.Generation, special: Mapping[str, str], *, guard: bool = False) -> list[str]:
    """The BV and the SV of one generation, as after ``iSMsc_create``'s success line (SPEC §8)::

           BV:SOURCE_0001         LX
              Special File : -
           SV:SOURCE_0001_SV006D  LX
              Generation : -1
              Status     : snap/active [2014/09/18 05:15:04]

    Also used by delete, restore, wait and (with ``guard``: an ``SV Guard`` line) svguard."""
    return _block("BV", gen.bv, gen.format, [("Special File", special.get(gen.bv, "-"))]) + _block(
        "SV", gen.sv, gen.format, generation_items(gen, guard=guard)
    )


def link_block(
    info: pb.LinkInfo,
    special: Mapping[str, str],
    *,
    linked: bool,
    target: pb.LinkEntry | None = None,
    generation: pb.Generation | None = None,
    bv_state: str = "",
) -> list[str]:
    """The LV and the volume it was linked to (``linked``) or unlinked from, after the success line of
    ``iSMsc_link``/``iSMsc_unlink``::

           LV:lv001               WN
              Special File : disk3
              State        : link   (sv001_1)
              Mode         : rw
           SV:sv001_1             WN
              Generation : -1
              Status     : snap/active [2001/02/21 12:27:01]

    ``info`` is the LV's LinkInfo (for unlink: as it was before); ``target`` the link (default: the
    first of ``info.links``); ``generation`` the SV's generation when known (else the SV block has
    no items); ``bv_state`` the BV's state (``normal`` …) for an LV-BV link."""
    if target is None:
        target = info.links[0] if info.links else pb.LinkEntry(lv=info.volume, target="-", kind="sv")
    lv_items = [("Special File", special.get(info.volume, "-"))]
    if linked:
        lv_items += [
            ("State", LINK_STATE.format(state="link", other=target.target)),
            ("Mode", target.mode or "rw"),
        ]
    else:
        lv_items += [("State", "unlink"), ("Mode", "nr")]
    lines = _block("LV", info.volume, info.format, lv_items)
    if target.kind == "bv":
        bv_items = [("Special File", special.get(target.target, "-"))]
        if bv_state:
            bv_items.append(("State", bv_state))
        return lines + _block("BV", target.target, info.format, bv_items)
    gen_items = generation_items(generation) if generation is not None else []
    return lines + _block("SV", target.target, generation.format if generation else info.format, gen_items)


# ----------------------------------------------------------------------------------- iSMsc_query
def bv_information(q: pb.QueryReply, special: Mapping[str, str]) -> list[str]:
    return [INFO_HEAD_BV] + [
        INFO_ITEM.format(key=k, value=v)
        for k, v in (
            ("LD Name", q.bv),
            ("Type", _or_dash(q.format)),
            ("Special File", special.get(q.bv, "-")),
            ("State", _or_dash(q.state)),
            ("Reserve Area", _or_dash(q.reserve_area)),
        )
    ]


def _selected(q: pb.QueryReply, svs: Iterable[str] | None) -> list[pb.Generation]:
    if svs is None:
        return list(q.generations)
    wanted = set(svs)
    return [g for g in q.generations if g.sv in wanted]


def summary_line(gen: pb.Generation) -> str:
    return SUMMARY_SV_LINE.format(
        type=_or_dash(gen.format),
        name=gen.sv,
        relgen=relgen_text(gen),
        state=gen.state,
        time=_time(gen.state_time),
        link=_or_dash(gen.link),
    )


def query_summary(
    q: pb.QueryReply, special: Mapping[str, str], svs: Iterable[str] | None = None
) -> list[str]:
    """``iSMsc_query … -summary`` and ``iSMsc_query -sv SV -svflg ld`` (SPEC §8)::

        BV Information
            LD Name      : test_src_0000
            Type         : LX
            Special File : /dev/sdc
            State        : normal
            Reserve Area : -

        SV Information
          LX:test_src_0000_SV0014    ( -1) snap/active   [2014/03/24 11:16:16] link

    One SV line per SV of the set in the array's order (live generations newest first, then the
    SVs holding no snapshot), or only the SVs named in ``svs``."""
    return bv_information(q, special) + ["", INFO_HEAD_SV] + [summary_line(g) for g in _selected(q, svs)]


def processing_size(gen: pb.Generation) -> str:
    if gen.state != STATE_RESTORING:
        return "-"
    return size_text(max(0, gen.restore_total - gen.restore_done) * BLOCK)


def detail_sv_block(gen: pb.Generation, lv_format: str, special: Mapping[str, str]) -> list[str]:
    live = gen.has_relgen
    lines = [DETAIL_HEAD.format(kind="SV", key="LD Name", value=gen.sv)] + [
        DETAIL_ITEM.format(key=k, value=v)
        for k, v in (
            ("Type", _or_dash(gen.format)),
            (
                "Generation(Attribute)",
                DETAIL_GENERATION.format(relgen=relgen_text(gen), attribute=gen.attribute or "normal"),
            ),
            ("Snap State", DETAIL_SNAP_STATE.format(state=gen.state, time=_time(gen.state_time))),
            ("Create   Start Time", _or_dash(gen.create_time)),
            ("Processing Data Size", processing_size(gen)),
            ("Snapshot Data Size", size_text(gen.data_size) if live else "-"),
            ("SV Guard", "on" if gen.guard else "off"),
            ("LV Link Status", _or_dash(gen.link)),
        )
    ]
    if gen.consistency:  # SnapLab extension (iSMsc_create -quiesce): absent from the guide's layout otherwise
        lines.append(DETAIL_ITEM.format(key="Consistency", value=gen.consistency))
    if gen.holds:  # SnapLab extension (iSMsc_svguard -hold): absent unless the generation has holds
        lines.append(DETAIL_ITEM.format(key="Holds", value=f"{', '.join(gen.holds)} ({len(gen.holds)})"))
    if gen.group:  # SnapLab extension: made by a consistency group's create (iSMsc_create -cg)
        lines.append(DETAIL_ITEM.format(key="Consistency Group", value=gen.group))
    if gen.link == "link" and gen.lv:
        lines.append(DETAIL_HEAD.format(kind="LV", key="LD Name", value=gen.lv))
        lines.append(DETAIL_ITEM.format(key="Type", value=_or_dash(lv_format)))
        if gen.lv in special:
            lines.append(DETAIL_ITEM.format(key="Special File", value=special[gen.lv]))
        lines.append(DETAIL_ITEM.format(key="LV Access", value=_or_dash(gen.lv_mode)))
    return lines


def query_detail(q: pb.QueryReply, special: Mapping[str, str], svs: Iterable[str] | None = None) -> list[str]:
    """``iSMsc_query -bv BV -bvflg ld -detail`` (SPEC §8)::

        BV Information
            …as in the summary…

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

    One SV block per SV (order and ``svs`` as in the summary); the LV block follows a linked SV and
    has no ``Special File`` line when this host does not see the LV."""
    lines = bv_information(q, special) + ["", INFO_HEAD_PAIR]
    for gen in _selected(q, svs):
        lines += detail_sv_block(gen, q.format, special)
    return lines


# ----------------------------------------------------------------------------------- iSMsc_linkinfo
def volume_mode(info: pb.LinkInfo) -> str:
    """The ``Mode`` of the specified volume (module docstring)."""
    if info.type == "SV":
        return "nr"
    if info.type == "LV":
        return (info.links[0].mode or "rw") if info.state == "link" and info.links else "nr"
    if info.type == "BV" and any(x.kind == "bv" for x in info.links):
        return "nr"
    return "rw"


def destinations_of(q: pb.QueryReply) -> list[pb.LinkEntry]:
    """Every LV of a BV with its link (the ``Destination Volume Information`` of its pair family)."""
    target = {g.lv: g.sv for g in q.generations if g.link == "link" and g.lv}
    if q.bv_link_lv:
        target[q.bv_link_lv] = q.bv
    out = []
    for lv in q.lvs:
        other = target.get(lv.lv, "") if lv.link == "link" else ""
        out.append(
            pb.LinkEntry(
                lv=lv.lv,
                target=other,
                kind="bv" if other and other == q.bv else "sv",
                mode=lv.mode if other else "",
            )
        )
    return out


def destination_line(entry: pb.LinkEntry, format_: str) -> str:
    linked = bool(entry.target)
    return LINKINFO_DESTINATION.format(
        kind="LV",
        name=entry.lv,
        type=_or_dash(format_),
        state="link" if linked else "unlink",
        other=f"({entry.target})" if linked else "(-)",
        mode=(entry.mode or "rw") if linked else "nr",
    )


def linkinfo(
    info: pb.LinkInfo,
    special: Mapping[str, str],
    destinations: Sequence[pb.LinkEntry] | None = None,
) -> list[str]:
    """``iSMsc_linkinfo -vol V -volflg ld -lcl`` (SPEC §8)::

        Specified Volume Information
        SV:LD Name      : test_src_0000_SV0014
           Type         : LX
           Special File : -
           State        : link   (test_src_0000_LV0064)
           Mode         : nr

        Destination Volume Information
            LV:test_src_0000_LV0050     LX link   (test_src_0000_SV0016)    rw

    ``State`` names the volume at the other end of the link (the LV of an SV or BV, the SV or BV of
    an LV). ``destinations``: the LVs of the volume's pair family (``destinations_of`` a query of
    its BV); when None, the links of ``info`` itself."""
    if info.state == "link" and info.links:
        first = info.links[0]
        other = first.target if info.type == "LV" else first.lv
        state = LINK_STATE.format(state="link", other=other)
    else:
        state = "unlink"
    lines = [
        LINKINFO_HEAD_SPECIFIED,
        LINKINFO_HEAD.format(kind=info.type or "-", key="LD Name", value=info.volume),
    ]
    lines += [
        LINKINFO_ITEM.format(key=k, value=v)
        for k, v in (
            ("Type", _or_dash(info.format)),
            ("Special File", special.get(info.volume, "-")),
            ("State", state),
            ("Mode", volume_mode(info)),
        )
    ]
    dest = list(info.links) if destinations is None else list(destinations)
    lines += ["", LINKINFO_HEAD_DESTINATION] + [destination_line(x, info.format) for x in dest]
    return lines
