"""One host's model (C1): the Host and its disks and volumes; other code imports them from here."""

from snaplab.agent.host.host import Host
from snaplab.agent.host.model import (
    Disk,
    Volume,
    display_mount_point,
    mount_path,
    mount_slug,
    now_text,
    volume_guid,
    volume_name,
)

__all__ = [
    "Disk",
    "Host",
    "Volume",
    "display_mount_point",
    "mount_path",
    "mount_slug",
    "now_text",
    "volume_guid",
    "volume_name",
]
