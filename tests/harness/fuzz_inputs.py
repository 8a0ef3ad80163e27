"""Seeded fuzz inputs for the lab's services: adversarial strings, atheris-style byte mutations, and
requests for the manager, an agent's socket and the command lines.

Everything comes from one ``random.Random(seed)``: a run is reproducible from its seed. The requests
are built so that none can succeed in changing what the guide's backup procedure (2.2.1) needs:
operations that change something name only made-up objects (``fz…``), or break a rule the servers
check; the real names of the reference lab appear only in look-ups (query, linkinfo, monitor).
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from snaplab.v1 import agent_pb2
from snaplab.v1 import array_pb2 as apb
from snaplab.v1 import manager_pb2 as mpb

# Names of the reference lab (deploy/default_lab.toml) that look-ups may use.
REAL_LDS = ("bv001", "lv001", "sv001_01", "DB_DATA_BV", "DB_DATA_LV", "BACKUP_CV", "TEST_CV", "DB_CTL_SV")
ARRAY = "Tokyo_Customer_DataBase"
HOST_ROLES = ("business", "backup", "test", "standby")

_SHAPES = (
    "",
    " ",
    "\x00",
    "bv001\x00",
    " bv001",
    "bv001 ",
    "\n",
    "\r\n",
    "\t",
    "\x1b[31mred\x1b[0m",
    "\u202ebv001",
    "bv\u200b001",
    "\ufeff",
    "日本語のLD",
    "ﾃｽﾄ",
    "😀",
    "e\u0301\u0301\u0301",
    "{name}",
    "{detail}{0}{}",
    "%s%s%n",
    "../../etc/passwd",
    "C:\\Windows\\System32",
    "\\\\?\\Volume{37d84cca-2507-11d5-a0f7-00004c714491}\\",
    "'; DROP TABLE events;--",
    ".-1",
    ".-99999999999",
    "bv001.-0",
    "bv001.+1",
    "..-1",
    "-1",
    "NUL",
    "CON:",
)
_LONG = (33, 65, 257, 4097, 65537)


class Inputs:
    """The generator of one fuzz run."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    # -- strings and bytes --------------------------------------------------------------------------
    def fake(self) -> str:
        """A well-formed name of nothing in the lab."""
        r = self.rng
        return "fz" + "".join(
            r.choice(string.ascii_letters + string.digits + "_") for _ in range(r.randrange(1, 12))
        )

    def evil(self) -> str:
        """A string meant to break something: a shape of ``_SHAPES``, a long one, random code points."""
        r = self.rng
        pick = r.random()
        if pick < 0.45:
            return r.choice(_SHAPES)
        if pick < 0.7:
            n = r.choice(_LONG) if r.random() < 0.97 else (1 << 20) + 1
            return r.choice("Ax.-_/\\é日") * n
        chars = []
        for _ in range(r.randrange(1, 40)):
            cp = r.choice(
                (
                    r.randrange(0, 0x80),
                    r.randrange(0x80, 0x800),
                    r.randrange(0x800, 0xD800),
                    r.randrange(0xE000, 0x110000),
                )
            )
            chars.append(chr(cp))
        return "".join(chars)

    def name(self, real: tuple[str, ...] = ()) -> str:
        """A made-up name, an evil string, or (when ``real`` is given) sometimes a real one."""
        pick = self.rng.random()
        if real and pick < 0.35:
            return self.rng.choice(real)
        return self.fake() if pick < 0.7 else self.evil()

    def garbage(self) -> bytes:
        r = self.rng
        n = r.choice((0, 1, 2, 5, 17, 64, 300, 2048, 70000)) if r.random() < 0.9 else r.randrange(1, 4096)
        return r.randbytes(n)

    def mutate(self, data: bytes) -> bytes:
        """One to four atheris-style mutations: flip a bit, set a byte, insert, erase, duplicate,
        truncate, or splice in random bytes."""
        r = self.rng
        b = bytearray(data)
        for _ in range(r.randrange(1, 5)):
            op = r.randrange(7)
            i = r.randrange(len(b) + 1)
            if op == 0 and b:
                j = r.randrange(len(b))
                b[j] ^= 1 << r.randrange(8)
            elif op == 1 and b:
                b[r.randrange(len(b))] = r.choice((0, 0xFF, 0x7F, 0x80, r.randrange(256)))
            elif op == 2:
                b[i:i] = r.randbytes(r.randrange(1, 9))
            elif op == 3 and b:
                del b[i : i + r.randrange(1, 9)]
            elif op == 4 and b:
                j = r.randrange(len(b))
                b[i:i] = b[j : j + r.randrange(1, 33)]
            elif op == 5 and b:
                del b[r.randrange(len(b)) :]
            else:
                b[i:i] = r.randbytes(r.randrange(1, 65))
        return bytes(b)

    def wwn(self) -> str:
        return ":".join(f"{self.rng.randrange(256):02x}" for _ in range(8))

    def number(self) -> int:
        return self.rng.choice((0, 1, -1, 7, 255, 0x10000, 2**31 - 1, -(2**31)))

    def big(self) -> int:
        return self.rng.choice((0, 1, -1, 512, 1 << 20, 1 << 40, 2**63 - 1, -(2**63)))

    def timeout(self) -> float:
        return self.rng.choice((0.0, 0.01, 0.5, -1.0, float("nan"), float("inf"), 1e300))

    def encoded(self, message: Any) -> bytes:
        """The request as sent: its bytes, often mutated, sometimes replaced by garbage."""
        pick = self.rng.random()
        if pick < 0.15:
            return self.garbage()
        data = message.SerializeToString()
        return self.mutate(data) if pick < 0.55 else data


# -- manager ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request to send: the method's path, whether it streams replies, the caller, the bytes."""

    path: str
    streaming: bool
    principal: str
    payload: bytes


_PRINCIPALS = ("business01", "test01", "admin")


def _sv(g: Inputs, real: bool = False) -> apb.SvRef:
    flg = g.rng.choice(("ld", "relgen", "ld.relgen", "", g.name()))
    sv = g.rng.choice((".-1", "bv001.-1", "sv001_01")) if real and g.rng.random() < 0.5 else g.name()
    return apb.SvRef(sv=sv, svflg=flg)


def _control_op(g: Inputs, real_lookups: bool) -> dict[str, Any]:
    """One ControlRequest operation: look-ups may name real LDs, anything that changes names fakes."""
    r = g.rng
    fake_bv = g.fake()
    lookups = REAL_LDS if real_lookups else ()
    kind = r.choice(("create", "delete", "restore", "wait", "guard", "link", "unlink", "query", "linkinfo"))
    opts = apb.LayoutOptions(allow_multi_partition=r.random() < 0.5, allow_gpt=r.random() < 0.5)
    if kind == "create":
        return {"create": apb.CreateRequest(bv=fake_bv, sv=_sv(g), cyclic=r.random() < 0.5, options=opts)}
    if kind == "delete":
        return {"delete": apb.DeleteRequest(bv=fake_bv, sv=_sv(g), auto=r.random() < 0.5)}
    if kind == "restore":
        return {"restore": apb.RestoreRequest(bv=fake_bv, sv=_sv(g), derivsv=g.name(), options=opts)}
    if kind == "wait":
        # A real BV with a made-up SV is refused at once; a short timeout keeps any real wait short.
        bv = g.name(("bv001",)) if real_lookups else fake_bv
        return {
            "wait": apb.WaitRequest(
                bv=bv, sv=apb.SvRef(sv=g.fake(), svflg="ld"), cond=g.name(), timeout_seconds=g.timeout()
            )
        }
    if kind == "guard":
        return {"guard": apb.GuardRequest(bv=fake_bv, sv=_sv(g), on=r.random() < 0.5)}
    if kind == "link":
        return {"link": apb.LinkRequest(lv=g.fake(), sv=_sv(g), bv=g.fake(), mode=g.name(), options=opts)}
    if kind == "unlink":
        return {"unlink": apb.UnlinkRequest(lv=g.fake(), sv=_sv(g), bv=g.fake())}
    if kind == "query":
        return {"query": apb.QueryRequest(bv=g.name(lookups))}
    return {"linkinfo": apb.VolumeRef(name=g.name(lookups))}


def _config_op(g: Inputs) -> apb.ConfigRequest:
    """A configuration operation that names nothing real (so it is refused), or breaks a string rule."""
    r = g.rng
    C = apb.ConfigRequest
    kind = r.randrange(10)
    if kind == 0:
        return C(unbind_ld=apb.UnbindLd(ld=g.fake()))
    if kind == 1:
        return C(delete_generations=apb.DeleteGenerations(bv=g.fake(), count=g.number()))
    if kind == 2:
        return C(bind_lv=apb.BindLv(bv=g.fake(), name=g.fake(), number=g.number()))
    if kind == 3:
        return C(assign_access=apb.AssignAccess(ld=g.fake(), port=g.fake(), wwn=""))
    if kind == 4:
        return C(unassign_access=apb.UnassignAccess(ld=g.fake(), wwn=g.wwn()))
    if kind == 5:
        return C(set_format=apb.SetFormat(ld=g.fake(), format=g.name()))
    if kind == 6:
        names = [g.name() for _ in range(r.randrange(0, 4))]
        return C(
            add_generations=apb.AddGenerations(bv=g.fake(), pool=g.name(), count=g.number(), sv_names=names)
        )
    if kind == 7:
        return C(
            register_host=apb.RegisterHost(name=g.fake(), wwns=[g.wwn()], ports=[g.fake()], platform=g.name())
        )
    # Operations that would change the array when well-formed go only with a string no rule allows.
    bad = "\x00" + g.evil() + "x" * 64
    if kind == 8:
        return C(set_array_name=apb.SetArrayName(name=bad))
    return C(bind_pool=apb.BindPool(number=g.number(), name=bad, kind="basic", capacity=g.big()))


def manager_call(g: Inputs) -> Call:
    """One request to the Manager service."""
    r = g.rng
    principal = r.choice(_PRINCIPALS)
    method = r.choice(
        (
            "Enrol",
            "Route",
            "Route",
            "Route",
            "Snapshot",
            "Configure",
            "Monitor",
            "Events",
            "Watch",
            "InjectFault",
            "ClearFault",
        )
    )
    msg: Any
    if method == "Enrol":
        # Always a claim of HBAs that are nobody's: a mismatch with any definition (never empty).
        msg = mpb.EnrolRequest(
            role=r.choice((*HOST_ROLES, g.name())),
            platform=g.name(),
            wwns=[g.wwn() for _ in range(r.randrange(1, 4))],
            ports=[g.name() for _ in range(r.randrange(0, 3))],
            cluster=g.name(),
            cluster_role=r.choice(("", "active", "standby", g.name())),
        )
    elif method == "Route":
        msg = mpb.ControlRequest(
            array=r.choice(("", ARRAY, g.name())), via=g.name(REAL_LDS), **_control_op(g, True)
        )
    elif method == "Snapshot":
        msg = mpb.ControlRequest(array=r.choice(("", ARRAY, g.name())), via=g.name(), **_control_op(g, False))
    elif method == "Configure":
        msg = mpb.ManagedConfig(array=r.choice(("", ARRAY, g.name())), request=_config_op(g))
    elif method == "Monitor":
        msg = mpb.MonitorRequest(array=r.choice(("", ARRAY, g.name())))
    elif method in ("Events", "Watch"):
        msg = mpb.EventsRequest(after_seq=g.big(), limit=g.number())
    else:
        # A fault kind no array has (faults naming real targets would change the lab).
        msg = mpb.ManagedFault(
            array=r.choice(("", ARRAY)), fault=apb.FaultRequest(kind=g.name(), target=g.name())
        )
    return Call(f"/snaplab.v1.Manager/{method}", method == "Watch", principal, g.encoded(msg))


# -- an agent's socket and the command lines ---------------------------------------------------------

COMMANDS = (
    "iSMvollist", "iSMsc_create", "iSMsc_delete", "iSMsc_restore", "iSMsc_wait", "iSMsc_svguard",
    "iSMsc_link", "iSMsc_unlink", "iSMsc_query", "iSMsc_linkinfo", "iSMrc_flush", "iSMrc_umount",
    "iSMrc_mount", "iSMrc_scan", "iSMrc_signature", "iSMvolgather", "MOUNTVOL", "DISKPART", "FORMAT",
    "CHKDSK",
)  # fmt: skip
LOOKUP_COMMANDS = ("iSMsc_query", "iSMsc_linkinfo")
_OPTIONS = (
    "-bv", "-bvflg", "-sv", "-svflg", "-lv", "-lvflg", "-cyclic", "-auto", "-nowait", "-cond", "-mode",
    "-lvacc", "-vol", "-volflg", "-lcl", "-detail", "-summary", "-drv", "-mvol", "-force", "-offline",
    "-cr", "-a", "-r", "-check", "-cvdef", "-cvdel", "-export", "-import", "-d", "-derivsv", "-limit",
    "–bv", "/L", "/N", "/E", "/D", "/P", "/F", "/R", "/Y", "/Q", "/FS:NTFS", "/V:x", "/s", "/?",
)  # fmt: skip
_VALUES = (
    "ld",
    "relgen",
    "ld.relgen",
    "drv",
    "mvol",
    "set",
    "cancel",
    "active",
    "rw",
    "ro",
    "nr",
    "na",
    "Z:",
    "Q:",
    "H:",
    "C:",
    "X:\\fz",
)
_DISKPART = (
    "list disk", "list volume", "list partition", "select disk", "select partition", "select volume",
    "detail disk", "create partition primary", "create partition extended", "create partition logical",
    "delete partition", "format fs=ntfs quick", "assign letter=", "assign mount=", "remove", "clean",
    "convert gpt", "convert mbr", "convert dynamic", "online disk", "offline disk", "uniqueid disk id=",
    "rescan", "exit", "help",
)  # fmt: skip


# Each command's usual forms: V a volume (made-up or evil; real for look-ups), F a -xxflg value, D a
# drive, M a volume name, P a path in the run's folder, K a keyword value.
_FORMS = {
    "iSMsc_create": ("-bv V -bvflg F -sv V -svflg F", "-bv V -bvflg F -cyclic"),
    "iSMsc_delete": ("-bv V -bvflg F -auto", "-bv V -bvflg F -sv V -svflg F"),
    "iSMsc_restore": ("-bv V -bvflg F -sv V -svflg F -nowait", "-bv V -bvflg F -sv V -svflg F -derivsv K"),
    "iSMsc_wait": ("-cond K -bv V -bvflg F -sv V -svflg F",),
    "iSMsc_svguard": ("-bv V -bvflg F -sv V -svflg F -mode K",),
    "iSMsc_link": ("-lv V -lvflg F -sv V -svflg F", "-lv V -lvflg F -bv V -bvflg F -lvacc K"),
    "iSMsc_unlink": ("-lv V -lvflg F", "-lv V -lvflg F -sv V -svflg F"),
    "iSMsc_query": (
        "-bv V -bvflg F",
        "-sv V -svflg F",
        "-bv V -bvflg F -detail",
        "-bv V -bvflg F -sv V -svflg F -summary",
    ),
    "iSMsc_linkinfo": ("-vol V -volflg F -lcl", "-vol V -volflg F"),
    "iSMrc_flush": ("-drv D", "-mvol M"),
    "iSMrc_umount": ("-drv D", "-drv D -force", "-mvol M -offline"),
    "iSMrc_mount": ("-drv D", "-mvol M -drv D"),
    "iSMrc_scan": ("",),
    "iSMrc_signature": ("-export P", "-import P"),
    "iSMvollist": ("-cr", "-a", "-r", "-check", "-cvdef V", "-cvdel V"),
    "iSMvolgather": ("-d P",),
    "MOUNTVOL": ("/L", "D M", "D /D", "/N", "/E"),
    "CHKDSK": ("D", "D /F", "M /F"),
    "FORMAT": ("D /FS:NTFS /Q /Y", "D /V:K /Y"),
    "DISKPART": ("",),
}


def _form_value(g: Inputs, slot: str, real: tuple[str, ...], folder: str) -> str:
    r = g.rng
    if r.random() < 0.15:
        return g.evil()
    if slot == "V":
        return g.name(real)
    if slot == "F":
        return r.choice(("ld", "drv", "mvol", "relgen", "ld.relgen", "LD", g.fake()))
    if slot == "D":
        return r.choice(("Z:", "Q:", "H:", "C:", "z:", "ZZ:", "1:", "Z", f"C:\\{g.fake()}"))
    if slot == "M":
        return "\\\\?\\Volume{" + "-".join(f"{r.getrandbits(b * 4):0{b}x}" for b in (8, 4, 4, 4, 12)) + "}\\"
    if slot == "P":
        return f"{folder}/{g.fake()}"
    return r.choice(("active", "set", "cancel", "rw", "ro", "nr", "na", "keep", g.fake()))


def command_line(g: Inputs, folder: str) -> tuple[list[str], str]:
    """(argv, stdin) of one command for a host whose state the backup procedure does not use: a
    usual form of the command with odd values, or a soup of options.

    Real LD names appear only with look-up commands; paths that a command writes to are under
    ``folder`` (made-up names everywhere else)."""
    r = g.rng
    name = (
        r.choice(COMMANDS) if r.random() < 0.92 else r.choice((g.fake(), g.evil(), "iSMsc_CREATE", "iSMcfg"))
    )
    real = REAL_LDS if name in LOOKUP_COMMANDS else ()
    args: list[str] = []
    if name in _FORMS and r.random() < 0.6:
        form = r.choice(_FORMS[name]).split()
        args = [_form_value(g, w, real, folder) if w in ("V", "F", "D", "M", "P", "K") else w for w in form]
    for _ in range(0 if args else r.randrange(0, 8)):
        pick = r.random()
        if pick < 0.45:
            args.append(r.choice(_OPTIONS))
        elif pick < 0.65:
            args.append(r.choice(_VALUES))
        elif pick < 0.9:
            args.append(g.name(real))
        else:
            args.append(f"{folder}/{g.fake()}")
    if name in ("iSMvolgather", "iSMrc_signature") and args:
        # Commands that write files: only into the fuzz run's own folder.
        args = [a if a.startswith(("-", "/")) else f"{folder}/{g.fake()}" for a in args]
    stdin = ""
    if name in ("DISKPART", "FORMAT") and r.random() < 0.8:
        lines = []
        for _ in range(r.randrange(0, 6)):
            line = r.choice(_DISKPART)
            if line.endswith("="):
                line += g.name()
            elif line.endswith(("disk", "partition", "volume")):
                line += f" {r.choice((0, 1, 2, 3, 9, -1, 99999))}"
            lines.append(line if r.random() < 0.85 else g.evil())
        stdin = "\n".join(lines) + "\n"
    return [name, *args], stdin


def agent_call(g: Inputs, folder: str) -> tuple[str, bytes]:
    """(method, request bytes) for an agent's socket."""
    if g.rng.random() < 0.1:
        return "Status", g.encoded(agent_pb2.StatusRequest()) if g.rng.random() < 0.5 else g.garbage()
    argv, stdin = command_line(g, folder)
    pid = g.rng.choice((0, -1, 1, 2**31 - 1, 4242))
    return "Run", g.encoded(agent_pb2.CommandRequest(argv=argv, stdin=stdin, caller_pid=pid))


def raw_command_line(g: Inputs, folder: str) -> tuple[list[bytes], bytes]:
    """A command line as bytes, as a shell hands it over: often not UTF-8, with bytes on stdin."""
    argv, stdin = command_line(g, folder)
    raw = [a.encode("utf-8", "replace") for a in argv]
    r = g.rng
    for i in range(1, len(raw)):
        if r.random() < 0.1:
            raw[i] = g.mutate(raw[i]) if raw[i] else r.randbytes(3)
    if r.random() < 0.1:
        raw.append(bytes([r.randrange(0x80, 0x100)]) + r.randbytes(r.randrange(0, 6)))
    # A process's argv holds no NUL, and Linux takes at most 128 KiB per argument (MAX_ARG_STRLEN).
    raw = [a.replace(b"\x00", b"")[:120_000] or b"-" for a in raw]
    data = stdin.encode()
    if r.random() < 0.4:
        data = g.mutate(data) if data else g.garbage()
    return raw, data


MakeCall = Callable[[Inputs], Call]
