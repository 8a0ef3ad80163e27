"""``CLUSTER GROUP NAME /OFFLINE | /ONLINE``: a cluster group taken offline or online on its owner node.

As ``cluster.exe group "G" /offline`` of MSCS: offline flushes and dismounts the group's shared disks
on this node without failing the group over (the guide's restore on a shared disk, 3.10 (12): offline
the disk, stop the service, restore, online); online mounts them again at their letters. Only the
node that owns the group (its disks' reservation) may do either. Messages: iSM31218 / iSM31219 on
success; iSM31200 (no such group of this node's cluster), iSM31193 (another node owns it), iSM11100.
"""

from __future__ import annotations

from snaplab.agent.cluster import service as cluster_service
from snaplab.agent.commands.base import CommandError, Ctx, command

from snaplab.common.errors import E


@command("CLUSTER", "cluster.exe")
def cluster_cmd(ctx: Ctx) -> int:
    args = [a.lower() for a in ctx.args]
    if len(args) != 3 or args[0] != "group" or args[2] not in ("/offline", "/online"):
        raise CommandError(E.USAGE, detail="CLUSTER GROUP NAME /OFFLINE | /ONLINE")
    svc = cluster_service.current()
    g = svc.group(ctx.args[1]) if svc is not None else None
    if svc is None or g is None:
        raise CommandError(E.CLUSTER_UNKNOWN, name=ctx.args[1])
    owner = svc.owner(g)
    if owner != ctx.host.name:
        raise CommandError(E.RESERVED_ELSEWHERE, name=f"{g.name} is owned by {owner or 'nobody'}")
    host = ctx.host
    if args[2] == "/offline":
        svc.held.add(g.name)  # the cluster keeps it here, and nobody takes it over
        for d in g.disks:
            volume = host.volume_by_name(d["volume"])
            if volume is not None and volume.mount_points:
                host.unmount(volume)  # flushed first; refused (iSM13609) while a program holds it
        ctx.notice(E.GROUP_OFFLINE, name=f"{g.name} on {host.name}")
        return 0
    for d in g.disks:
        volume = host.volume_by_name(d["volume"])
        if volume is None:
            raise CommandError(E.NO_SUCH_VOLUME, name=d["volume"])
        if not volume.mount_points:
            host.mount(volume, d["mount"])
    svc.held.discard(g.name)
    ctx.notice(E.GROUP_ONLINE, name=f"{g.name} on {host.name}")
    return 0
