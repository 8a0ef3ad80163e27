"""SnapLab extension (issue 14): consistency groups, named sets of BVs snapshotted at one instant.

A group create makes one generation of every member in one engine transaction, that is under the
engine's one lock: a host's write is committed under that lock too, so each write is either before
the instant (in every member's generation) or after it (in none); no write to one member can be in
its generation and missing from another's. The member generations one create made are a *group
generation*, addressed by relative group generation (-1 the newest). Every other group operation
(delete, restore, guard and holds, link, unlink) is one transaction as well, all or nothing: a
member's refusal is raised as iSM31267 carrying that member's own message, and the transaction's
rollback (engine._tx) leaves every member as it was. Members are kept by LD number (a renamed BV
stays a member). docs/extensions.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from snaplab.common.errors import E, SnapLabError

from .model import LD, Gen

GROUP_NAME = re.compile(r"[A-Za-z0-9_-]{1,32}")
MAX_MEMBERS = 64
T = TypeVar("T")


def create_tables(db: Any) -> None:
    db.execute("CREATE TABLE IF NOT EXISTS cgroups (name TEXT PRIMARY KEY, members TEXT)")
    db.execute(
        "CREATE TABLE IF NOT EXISTS cgroup_gens (grp TEXT, seq INTEGER, sv INTEGER, epoch INTEGER,"
        " time TEXT, PRIMARY KEY (grp, seq, sv))"
    )


def read_state(q: Any) -> dict:
    groups = {
        name: [int(n) for n in json.loads(members)]
        for name, members in q("SELECT name, members FROM cgroups")
    }
    gens: dict[str, dict[int, tuple[str, list[tuple[int, int]]]]] = {}
    by_gen: dict[tuple[int, int], str] = {}
    for grp, seq, sv, epoch, time in q(
        "SELECT grp, seq, sv, epoch, time FROM cgroup_gens ORDER BY grp, seq, rowid"
    ):
        gens.setdefault(grp, {}).setdefault(seq, (time, []))[1].append((sv, epoch))
        by_gen[(sv, epoch)] = grp
    return {"cgroups": groups, "cgroup_gens": gens, "cgroup_by_gen": by_gen}


def check_group_name(name: str) -> str:
    if not GROUP_NAME.fullmatch(name or ""):
        raise SnapLabError(E.GROUP_BAD, detail=f"name {name!r}: 1-32 letters, digits, _ and -")
    return name


class GroupsMixin:
    """A mixin of ``ArrayEngine`` (engine.py) over the operations of snapshots.py, restore.py and holds.py."""

    # -- definition (iSMcfg cgadd / cgdel, the lab file's groups) ----------------------------------
    def group_define(self, name: str, bvs: list[str]) -> None:
        check_group_name(name)
        if not 1 <= len(bvs) <= MAX_MEMBERS:
            raise SnapLabError(E.GROUP_BAD, detail=f"{name}: 1 to {MAX_MEMBERS} BVs")
        with self._tx():
            if name in self.cgroups:
                raise SnapLabError(E.GROUP_EXISTS, name=name)
            members = [self._bv(ref) for ref in bvs]
            numbers = [m.number for m in members]
            if len(set(numbers)) != len(numbers):
                raise SnapLabError(E.GROUP_BAD, detail=f"{name}: a BV is listed twice")
            taken = {n: g for g, ns in self.cgroups.items() for n in ns}
            for m in members:
                if m.number in taken:
                    raise SnapLabError(E.GROUP_MEMBER_TAKEN, name=f"{m.name} (group {taken[m.number]})")
            self.db.execute("INSERT INTO cgroups VALUES (?, ?)", [name, json.dumps(numbers)])
            self.cgroups[name] = numbers

    def group_remove(self, name: str) -> None:
        """The group goes; its members' generations stay, as ordinary ones."""
        with self._tx():
            self._group(name)
            self.db.execute("DELETE FROM cgroups WHERE name=?", [name])
            self.db.execute("DELETE FROM cgroup_gens WHERE grp=?", [name])
            del self.cgroups[name]
            for entries in self.cgroup_gens.pop(name, {}).values():
                for key in entries[1]:
                    self.cgroup_by_gen.pop(key, None)

    def group_list(self) -> list[dict]:
        with self._state():
            return [
                {"name": n, "bvs": [self.lds[x].name if x in self.lds else f"{x:04x}h" for x in ns]}
                for n, ns in sorted(self.cgroups.items())
            ]

    # -- lookups ---------------------------------------------------------------------------------
    def _group(self, name: str) -> list[int]:
        if name not in self.cgroups:
            raise SnapLabError(E.GROUP_NOT_FOUND, name=name)
        return self.cgroups[name]

    def _group_members(self, name: str, expect: list[str] | None) -> list[LD]:
        """The group's BVs; refused if one is no longer a BV, or (``expect``) they are not the ones
        the caller checked (the manager's routing, against a view that may be stale)."""
        out = []
        for n in self._group(name):
            ld = self.lds.get(n)
            if ld is None or ld.type != "BV":
                raise SnapLabError(E.GROUP_REFUSED, detail=f"{name}: member {n:04x}h is no longer a BV")
            out.append(ld)
        if expect and [m.name for m in out] != list(expect):
            raise SnapLabError(E.GROUP_CHANGED, name=name)
        return out

    def _group_of_gen(self, g: Gen) -> str:
        if not g.live or g.epoch is None:
            return ""
        return self.cgroup_by_gen.get((g.sv, g.epoch), "")

    def _live_entries(self, entries: list[tuple[int, int]]) -> list[tuple[LD, Gen]]:
        out = []
        for sv, epoch in entries:
            g = self.gens.get(sv)
            if g is not None and g.live and g.epoch == epoch:
                out.append((self.lds[sv], g))
        return out

    def _group_gens(self, name: str) -> list[tuple[int, str, list[tuple[LD, Gen]]]]:
        """(seq, create time, live member generations) of the group's generations, newest first; a
        group generation all of whose member generations are gone is no longer one."""
        out = []
        for seq, (time, entries) in sorted(self.cgroup_gens.get(name, {}).items(), reverse=True):
            live = self._live_entries(entries)
            if live:
                out.append((seq, time, live))
        return out

    def _group_gen(self, name: str, gen: int) -> tuple[int, int, str, list[tuple[LD, Gen]]]:
        gens = self._group_gens(name)
        if gen >= 0 or -gen > len(gens):
            raise SnapLabError(E.GROUP_GEN_NOT_FOUND, name=f"{name} {gen}")
        seq, time, live = gens[-gen - 1]
        return gen, seq, time, live

    def _complete(self, name: str, members: list[LD], live: list[tuple[LD, Gen]], what: str) -> None:
        have = {sv.bv for sv, _ in live}
        missing = [m.name for m in members if m.number not in have]
        if missing:
            raise SnapLabError(
                E.GROUP_REFUSED,
                detail=f"{name}: {', '.join(missing)} no longer "
                f"{'has' if len(missing) == 1 else 'have'} this generation; cannot {what}",
            )

    @staticmethod
    def _member(bv: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """One member's part of a group operation; its refusal is the group's (iSM31267)."""
        try:
            return fn(*args, **kwargs)
        except SnapLabError as exc:
            raise SnapLabError(E.GROUP_REFUSED, detail=f"{bv}: {exc}") from None

    def _group_info(
        self, name: str, members: list[LD], rel: int, time: str, entries: list[tuple[int, int]]
    ) -> dict:
        by_bv = {sv.bv: sv for sv, _ in self._live_entries(entries)}
        return {
            "relgen": rel,
            "create_time": time,
            "members": [self._gen_info(by_bv[m.number]) for m in members if m.number in by_bv],
            "missing": [m.name for m in members if m.number not in by_bv],
        }

    def _reply(self, name: str, members: list[LD], gens: list[dict], links: list[dict] | None = None) -> dict:
        return {"group": name, "bvs": [m.name for m in members], "generations": gens, "links": links or []}

    # -- operations ------------------------------------------------------------------------------
    def group_create(
        self,
        name: str,
        *,
        cyclic: bool = False,
        allow_multi: bool = False,
        allow_gpt: bool = False,
        expect: list[str] | None = None,
    ) -> dict:
        """Every member's generation at one instant (one transaction under the engine's lock)."""
        with self._tx():
            members = self._group_members(name, expect)
            self._check_licence()
            svs: list[str | None] = []
            for bv in members:
                if cyclic:
                    svs.append(None)
                    continue
                free = next((sv for sv in self._svs_of(bv.number) if not self.gens[sv.number].live), None)
                if free is None:
                    raise SnapLabError(E.GROUP_NO_FREE_SV, name=f"{name}: {bv.name}")
                svs.append(free.name)
            made = [
                self._member(
                    bv.name,
                    self.create,
                    bv.number,
                    sv,
                    "ld",
                    cyclic=cyclic,
                    allow_multi=allow_multi,
                    allow_gpt=allow_gpt,
                )
                for bv, sv in zip(members, svs)
            ]
            gens = self.cgroup_gens.setdefault(name, {})
            for seq in [s for s, (_, e) in gens.items() if not self._live_entries(e)]:  # gone: forget them
                self.db.execute("DELETE FROM cgroup_gens WHERE grp=? AND seq=?", [name, seq])
                for key in gens.pop(seq)[1]:
                    self.cgroup_by_gen.pop(key, None)
            seq = max(gens, default=0) + 1
            now = self._clock()
            entries = []
            for info in made:
                sv = self.ld(info["sv"])
                entries.append((sv.number, self.gens[sv.number].epoch))
            self.db.conn.executemany(
                "INSERT INTO cgroup_gens VALUES (?,?,?,?,?)", [(name, seq, sv, ep, now) for sv, ep in entries]
            )
            gens[seq] = (now, entries)
            for key in entries:
                self.cgroup_by_gen[key] = name  # type: ignore[index]
            return self._reply(name, members, [self._group_info(name, members, -1, now, entries)])

    def group_delete(self, name: str, gen: int, *, expect: list[str] | None = None) -> dict:
        """Delete every member generation of a group generation still there."""
        with self._tx():
            members = self._group_members(name, expect)
            rel, seq, time, live = self._group_gen(name, gen)
            for sv, _ in live:
                self._member(self.lds[sv.bv].name, self.delete, sv.bv, sv.name, "ld")  # type: ignore[arg-type]
            entries = self.cgroup_gens[name][seq][1]
            info = {
                "relgen": rel,
                "create_time": time,
                "missing": [],
                "members": [self._gen_info(sv) for sv, _ in live],
            }
            self.db.execute("DELETE FROM cgroup_gens WHERE grp=? AND seq=?", [name, seq])
            for key in entries:
                self.cgroup_by_gen.pop(key, None)
            del self.cgroup_gens[name][seq]
            return self._reply(name, members, [info])

    def group_restore(
        self,
        name: str,
        gen: int,
        *,
        derived: str = "keep",
        allow_multi: bool = False,
        allow_gpt: bool = False,
        expect: list[str] | None = None,
    ) -> dict:
        """Restore every member to the group generation, or none (a member that cannot: iSM31267)."""
        with self._tx():
            members = self._group_members(name, expect)
            rel, seq, time, live = self._group_gen(name, gen)
            self._complete(name, members, live, "restore")
            for sv, _ in live:
                self._member(
                    self.lds[sv.bv].name,
                    self.restore,
                    sv.bv,
                    sv.name,
                    "ld",  # type: ignore[arg-type]
                    derived=derived,
                    allow_multi=allow_multi,
                    allow_gpt=allow_gpt,
                )
            return self._reply(
                name, members, [self._group_info(name, members, rel, time, self.cgroup_gens[name][seq][1])]
            )

    def group_guard(
        self,
        name: str,
        gen: int,
        *,
        on: bool | None = None,
        hold: str = "",
        release: str = "",
        expect: list[str] | None = None,
    ) -> dict:
        """The guide's guard (on / off), or a named hold placed or released, on every member generation."""
        with self._tx():
            members = self._group_members(name, expect)
            rel, seq, time, live = self._group_gen(name, gen)
            for sv, _ in live:
                bv = self.lds[sv.bv].name  # type: ignore[index]
                if hold:
                    self._member(bv, self._hold_gen, sv, hold)
                elif release:
                    self._member(bv, self._release_gen, sv, release)
                else:
                    self._member(bv, self.guard, sv.bv, sv.name, "ld", on=bool(on))
            return self._reply(
                name, members, [self._group_info(name, members, rel, time, self.cgroup_gens[name][seq][1])]
            )

    def _group_lvs(self, name: str, members: list[LD], lvs: list[str]) -> dict[int, LD]:
        """The LVs given, one per member (by the LV's BV)."""
        by_bv: dict[int, LD] = {}
        numbers = {m.number for m in members}
        for ref in lvs:
            lv = self.ld(ref)
            if lv.type != "LV":
                raise SnapLabError(E.GROUP_LVS_BAD, detail=f"{name}: {lv.name} is not an LV")
            if lv.bv not in numbers:
                raise SnapLabError(E.GROUP_LVS_BAD, detail=f"{name}: {lv.name} is not an LV of a member")
            if lv.bv in by_bv:
                raise SnapLabError(E.GROUP_LVS_BAD, detail=f"{name}: two LVs of {self.lds[lv.bv].name}")
            by_bv[lv.bv] = lv  # type: ignore[index]
        return by_bv

    def group_link(
        self,
        name: str,
        gen: int,
        lvs: list[str],
        *,
        mode: str = "rw",
        allow_multi: bool = False,
        allow_gpt: bool = False,
        expect: list[str] | None = None,
    ) -> dict:
        """Link each member's generation to that member's LV of ``lvs`` (one per member)."""
        with self._tx():
            members = self._group_members(name, expect)
            rel, seq, time, live = self._group_gen(name, gen)
            self._complete(name, members, live, "link")
            by_bv = self._group_lvs(name, members, lvs)
            missing = [m.name for m in members if m.number not in by_bv]
            if missing:
                raise SnapLabError(E.GROUP_LVS_BAD, detail=f"{name}: no LV given for {', '.join(missing)}")
            links = [
                self._member(
                    self.lds[sv.bv].name,
                    self.link,
                    by_bv[sv.bv].number,
                    sv.name,
                    "ld",  # type: ignore
                    mode=mode,
                    allow_multi=allow_multi,
                    allow_gpt=allow_gpt,
                )
                for sv, _ in live
            ]
            return self._reply(
                name,
                members,
                [self._group_info(name, members, rel, time, self.cgroup_gens[name][seq][1])],
                links,
            )

    def group_unlink(self, name: str, lvs: list[str], *, expect: list[str] | None = None) -> dict:
        with self._tx():
            members = self._group_members(name, expect)
            by_bv = self._group_lvs(name, members, lvs)
            links = [self._member(self.lds[bv].name, self.unlink, lv.number) for bv, lv in by_bv.items()]
            return self._reply(name, members, [], links)

    def group_query(self, name: str, gen: int = 0, *, expect: list[str] | None = None) -> dict:
        """The group's generations (``gen`` 0), or one of them."""
        with self._state():
            members = self._group_members(name, expect)
            gens = self._group_gens(name)
            if gen:
                rel, seq, time, _ = self._group_gen(name, gen)
                picked = [(rel, seq, time)]
            else:
                picked = [(-i - 1, seq, time) for i, (seq, time, _) in enumerate(gens)]
            infos = [
                self._group_info(name, members, rel, time, self.cgroup_gens[name][seq][1])
                for rel, seq, time in picked
            ]
            return self._reply(name, members, infos)
