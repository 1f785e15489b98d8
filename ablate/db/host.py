"""Facts about the worker that a run row records: host, process and code version."""

from __future__ import annotations

import functools
import os
import socket
import subprocess
from pathlib import Path

# A worker's host id: the machine's name, unless this variable names another (two processes
# on one machine then judge each other as two nodes do: by heartbeat only, never by pid).
HOST_ENV = "ABLATE_HOST"
# Seconds between heartbeats, and of silence after which another worker takes a run over.
HEARTBEAT_ENV = "ABLATE_HEARTBEAT_S"
STALE_ENV = "ABLATE_STALE_AFTER_S"


def hostname() -> str:
    return os.environ.get(HOST_ENV) or socket.gethostname()


def worker_id(host: str | None, pid: int | None) -> str | None:
    """``host:pid``, what ``runs list --json`` shows as a run's ``worker``."""
    return None if host is None else f"{host}:{pid}"


def seconds_from_env(name: str, default: float) -> float:
    """A positive number of seconds from the environment, else ``default``."""
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ValueError(f"{name}={text!r} is not a positive number of seconds")
    return value


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
