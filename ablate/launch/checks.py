"""What breaks at cluster scale, checked before anything is submitted: a SQLite runs database
shared by several nodes, and a checkpoint folder that the other nodes cannot see."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import URL

from ablate.errors import UsageError

# File systems that every node of a cluster mounts (the network and parallel ones).
SHARED_FS = ("nfs", "nfs4", "lustre", "gpfs", "beegfs", "cephfs", "ceph", "glusterfs",
             "fuse.glusterfs", "panfs", "wekafs", "fuse.sshfs", "cifs", "smb3", "9p",
             "fuse.juicefs", "fuse.weka", "virtiofs", "orangefs", "pvfs2", "afs")


def refuse_sqlite(url: URL, workers: int, multi_node: bool, given: str | None = None) -> None:
    """Workers on several nodes need a database server: SQLite locks a file, and file locks
    over NFS and Lustre are unreliable (two workers could claim one run, or corrupt the file)."""
    if url.get_backend_name() == "sqlite" and multi_node and workers > 1:
        raise UsageError(
            f"--db {given or 'runs.db (the default)'} is a SQLite file, which {workers} "
            "workers on several nodes cannot share (file locks over network file systems are "
            "unreliable); pass --db postgresql+psycopg://USER@HOST/DB")


def mount_of(path: Path, mounts: str | None = None) -> tuple[str, str]:
    """(mount point, file system type) of the mount holding ``path``."""
    if mounts is None:
        try:
            mounts = Path("/proc/mounts").read_text()
        except OSError:
            return "/", "unknown"
    best = ("/", "unknown")
    target = str(path)
    for line in mounts.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1].replace("\\040", " ")
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best[0]):
            best = (point, fields[2])
    return best


def local_path_warning(folder: Path, mounts: str | None = None) -> str | None:
    """A warning line when ``folder`` sits on a file system other nodes do not mount; None
    when it is shared (or its type is unknown, as on a machine without /proc)."""
    resolved = folder.expanduser().resolve()
    point, kind = mount_of(resolved, mounts)
    if kind in SHARED_FS or kind == "unknown":
        return None
    return (f"Warning: checkpoint folder {resolved} is on a local file system ({kind} at "
            f"{point}); a run taken over on another node cannot see its checkpoints and "
            "restarts from epoch 0. Give --save-dir a path on the shared file system.")
