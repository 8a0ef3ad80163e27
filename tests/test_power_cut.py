"""Issue 8 item 10: an acknowledged change survives a power cut (README "Durability").

A power cut loses every write the machine had not synced. This test makes that happen in userspace,
honestly: the daemon runs with the debug hook ``SNAPLAB_DEBUG_POWERCUT`` (array/durability.py),
which keeps beside the state folder an image of what a power cut would leave — each data file as
of its last ``fdatasync`` (and only if its folder was synced after it was created), ``array.db`` and
its WAL as of the last COMMIT, credited only because the connection runs ``synchronous=FULL``
(SQLite syncs its log before COMMIT returns; with ``NORMAL`` the image keeps only the state at start).
Nothing the daemon wrote but did not sync reaches the image, so a daemon that acknowledged before
syncing would lose data here.

Each cycle: the daemon serves a writer (random unaligned writes of 1 B to 600 KiB, one transaction
each, and a new LD each cycle, created and written), is SIGKILLed at a random moment — the power
cut — and a new daemon starts on the image only. Every acknowledged write and LD must be there; the
write in flight at the cut may be there or not, wholly.
"""

from __future__ import annotations

import os
import random
import shutil
import threading
import time
from pathlib import Path

import pytest
from snaplab.array.process import ArrayProcess

from snaplab.common.rpc_errors import SnapLabClientError

CUTS = int(os.environ.get("SNAPLAB_POWER_CUTS", "6"))
CAP = 4 << 20  # bytes per LD
MAX_WRITE = 600 << 10  # under one WriteChunk (1 MiB): each write is one transaction


class Writer(threading.Thread):
    """Acknowledged writes to the LDs until the daemon is gone; the model is what was acknowledged."""

    def __init__(self, array: ArrayProcess, model: dict[str, bytearray], rng: random.Random) -> None:
        super().__init__(daemon=True)
        self.client = array.client("admin")
        self.model = model
        self.rng = rng
        self.acked = 0
        self.in_flight: tuple[str, int, bytes] | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while True:
                ld = self.rng.choice(sorted(self.model))
                n = self.rng.randint(1, MAX_WRITE)
                off = self.rng.randrange(0, CAP - n)
                data = self.rng.randbytes(n)
                self.in_flight = (ld, off, data)
                self.client.write(ld, off, data)
                self.model[ld][off : off + n] = data
                self.in_flight = None
                self.acked += 1
        except SnapLabClientError:
            pass  # the power went
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
        finally:
            self.client.close()


def _state_from_image(image: Path, state: Path) -> None:
    """The state folder a machine would boot with after the cut: the image, nothing else."""
    (state / "data").mkdir(parents=True)
    db = image / "db"
    for f in db.iterdir():
        shutil.copyfile(f, state / f.name)
    for f in (image / "data").iterdir():
        shutil.copyfile(f, state / "data" / f.name)


@pytest.mark.timeout(max(120, 25 * CUTS))
def test_a_power_cut_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    seed = int(os.environ.get("SNAPLAB_POWER_CUT_SEED", random.randrange(1 << 30)))
    rng = random.Random(seed)
    print(f"power cut: seed {seed}, {CUTS} cuts")
    model: dict[str, bytearray] = {}
    acked = kept_in_flight = 0
    writer: Writer | None = None
    for k in range(CUTS + 1):
        state, image = tmp_path / f"state{k}", tmp_path / f"image{k}"
        if k:
            _state_from_image(tmp_path / f"image{k - 1}", state)
        array = ArrayProcess(state, log_path=tmp_path / "array.log", env={"SNAPLAB_DEBUG_POWERCUT": str(image)})
        with array, array.client("admin") as admin:
            if k:  # after the cut: everything acknowledged is there; the write in flight wholly or not
                names = sorted(x.name for x in admin.describe().lds)
                assert names == sorted(model), (seed, k, names)
                for ld, want in model.items():
                    got = admin.read(ld, 0, CAP)
                    in_flight = writer.in_flight if writer is not None else None
                    if got != want and in_flight and in_flight[0] == ld:
                        _, off, data = in_flight
                        want[off : off + len(data)] = data
                        kept_in_flight += 1
                    assert got == want, f"seed {seed}, cut {k}: {ld} lost acknowledged data"
            else:
                admin.bind_pool(0, "Pool0", "basic", 1 << 30)
            if k == CUTS:
                break
            name = f"pc{k:02d}"  # a new LD (a new data file) each cycle, written at once
            admin.bind_ld(name, CAP, "Pool0", "LX")
            model[name] = bytearray(CAP)
            writer = Writer(array, model, rng)
            writer.start()
            time.sleep(rng.uniform(0.3, 1.2))
            array.kill()  # the power cut: the next daemon sees only the image
            writer.join(30)
            assert not writer.is_alive() and writer.error is None, writer.error
            acked += writer.acked
    print(f"power cut: {CUTS} cuts, {acked} acknowledged writes, 0 lost; "
          f"the write in flight was kept {kept_in_flight} times")
    assert acked >= 5 * CUTS
