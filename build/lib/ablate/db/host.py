"""Facts about the worker that a run row records: host, process and code version."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
from pathlib import Path


def hostname() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it just belongs to someone else
    except OSError:
        return False
    return True


@functools.cache
def code_version() -> str | None:
    """``git rev-parse --short HEAD`` of the repo holding this package, "-dirty" when tracked
    files changed; None when the package is not in a git checkout or git is missing."""
    repo = Path(__file__).resolve().parent

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        )
        return done.stdout.strip()

    try:
        commit = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{commit}-dirty" if dirty else commit
