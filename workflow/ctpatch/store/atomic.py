"""Writing outputs safely: temp-then-rename (:func:`atomic_path`), JSON and ``.npy`` through it.

A crash inside :func:`atomic_path` leaves nothing; a kill -9 leaves at most a hidden temporary file,
which the next write of the same output removes (:func:`clean_stale`).
"""

from __future__ import annotations

import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np


def temp_name(final: str | Path) -> Path:
    """The temporary name :func:`atomic_path` writes ``final`` under (hidden, this process's id)."""
    final = Path(final)
    return final.with_name(f".{final.name}.{os.getpid()}.tmp")


def clean_stale(final: str | Path) -> list[Path]:
    """Remove temporary files of ``final`` left by killed processes (``.<name>.<pid>.tmp`` whose
    process no longer runs); return what was removed.  A kill -9 skips every ``finally``: the next
    run cleans up here."""
    final = Path(final)
    removed = []
    if not final.parent.is_dir():
        return removed
    for p in final.parent.glob(f".{final.name}.*.tmp"):
        pid = p.name[len(final.name) + 2 : -len(".tmp")]
        if pid.isdigit() and int(pid) != os.getpid() and _pid_alive(int(pid)):
            continue  # a running process is writing it
        p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] not in "ZX"
    except (OSError, ValueError, IndexError):
        return True


@contextmanager
def atomic_path(final: str | Path):
    """Yield a temporary path beside ``final``; rename it to ``final`` only if the block succeeds.

    A crash inside the block leaves nothing; a kill -9 leaves at most a hidden ``.<name>.<pid>.tmp``
    file, never something that looks finished; the next write of ``final`` removes it
    (:func:`clean_stale`), whichever step it belongs to.
    """
    final = Path(final)
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot create the output folder: {exc.strerror}", exc.filename) from None
    clean_stale(final)
    tmp = temp_name(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as exc:
        if exc.filename is None:  # a failed write (disk full) names no file: name the output and the free space
            try:
                free = f"; {shutil.disk_usage(final.parent).free} bytes free on its disk"
            except OSError:
                free = ""
            raise OSError(exc.errno, f"cannot write: {exc.strerror or exc}{free}", str(final)) from exc
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def write_json(path: str | Path, data) -> None:
    """Write JSON atomically (sorted keys, so equal data gives equal bytes)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True, default=_json_default) + "\n")


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"Expected JSON-serialisable data, got {type(value).__name__}")


def save_npy(path: str | Path, array: np.ndarray) -> None:
    """``np.save`` through a temporary name."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


class ResultsLock:
    """An exclusive lock on a results folder for one run (``<results>/.ctpatch.lock``, ``flock``): a second
    run writing the same folder, from any working directory, stops at once naming the first.  Held while
    the process runs; the kernel releases it when the process ends, however it ends."""

    def __init__(self, results: str | Path):
        self.path = Path(results) / ".ctpatch.lock"
        self._fh = None

    def acquire(self) -> None:
        import fcntl
        import socket
        import time

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise OSError(
                f"{self.path.parent}: the results folder is in use by another ctpatch run ({holder}); wait for "
                f"it to end, or give this run another results folder"
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"process {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        fh.flush()
        self._fh = fh
