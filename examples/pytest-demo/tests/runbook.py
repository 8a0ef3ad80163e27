"""The runbook under test: the guide's backup operation 2.2.1 (P3), steps 1-15, with its commands verbatim."""

from __future__ import annotations

import time

from snaplab import Lab, Result

# The LV's volume on the backup server (the reference lab pins this name, as the guide prints it).
VOL = "\\\\?\\Volume{37d84cca-2507-11d5-a0f7-00004c714491}\\"

BUSINESS = [  # steps 1-8 on the business server, as printed (step 6 with the guide's en-dashes)
    "iSMsc_delete -bv bv001 -bvflg ld -auto",
    "iSMrc_flush -drv G:",
    "iSMrc_umount -drv G:",
    "iSMsc_create -bv bv001 -bvflg ld -cyclic",
    "iSMsc_svguard –bv bv001 –bvflg ld –sv .-1 –svflg relgen –mode set",
    "iSMrc_mount -drv G:",
]
BACKUP = [  # steps 9-15 on the backup server, as printed (two blanks before -drv in step 10)
    "iSMsc_link -lv lv001 -lvflg ld -sv bv001.-1 -svflg ld.relgen",
    f"iSMrc_mount -mvol {VOL}  -drv H:",
    f"iSMrc_flush -mvol {VOL}",
    f"iSMrc_umount -mvol {VOL}",
    "iSMsc_unlink -lv lv001 -lvflg ld",
    "iSMsc_svguard –bv bv001 –bvflg ld –sv .-1 –svflg relgen –mode cancel",
]

BUSY = "iSM31005"  # the volume is in use: try again


def create_with_retry(lab: Lab, host: str, line: str, attempts: int = 5, pause: float = 0.2) -> list[Result]:
    """Step 5 as a careful runbook does it: a busy volume (iSM31005) is tried again. Every attempt's result."""
    tried: list[Result] = []
    for _ in range(attempts):
        result = lab.run(host, line)
        tried.append(result)
        if result.ok or result.msg_id != BUSY:
            break
        time.sleep(pause)
    tried[-1].check()
    return tried


def backup_cycle(lab: Lab) -> tuple[str, dict[str, bytes]]:
    """2.2.1 steps 1-15: returns the SV the snapshot went to and the backup (the "tape": H:'s files)."""
    delete, flush, umount, create, guard, mount = BUSINESS
    link, lv_mount, lv_flush, lv_umount, unlink, unguard = BACKUP
    lab.run("business01", delete).check()  # step 1 (a notice when there is nothing to delete)
    # step 2: the business stops (no program holds G:)
    lab.run("business01", flush).check()  # step 3
    lab.run("business01", umount).check()  # step 4
    create_with_retry(lab, "business01", create)  # step 5
    lab.run("business01", guard).check()  # step 6
    lab.run("business01", mount).check()  # step 7
    # step 8: the business starts again
    lab.run("backup01", link).check()  # step 9
    lab.run("backup01", lv_mount).check()  # step 10
    h = lab.host("backup01").path("H:")  # step 11: the backup to tape reads H:'s files
    tape = {p.relative_to(h).as_posix(): p.read_bytes() for p in sorted(h.rglob("*")) if p.is_file()}
    lab.run("backup01", lv_flush).check()  # step 12
    lab.run("backup01", lv_umount).check()  # step 13
    lab.run("backup01", unlink).check()  # step 14
    lab.run("backup01", unguard).check()  # step 15
    newest = lab.array().query("bv001").live[0]
    return newest.sv, tape
