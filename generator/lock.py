"""One render job per output folder: an exclusive `flock` on `DIR/render.lock`.

The job's process takes the lock after every input has been checked and before it reads or writes
anything in the folder; its spawned worker processes hold the same open file (passed to them at
spawn), so the lock stays held until the job and every one of its workers have ended, even when the
job's process is killed (its workers then stop after their current image: executors/local.py). The
kernel releases an flock when the last process holding it ends, however it ends, so a lock is never
left held by a dead job; the file itself holds who took it (pid, host, start time, command line) for
the messages, and is deleted when the job ends normally.

A second job into a held folder stops at once, naming the holder. A lock file left by a killed job
(the lock is free but the file is still there) is taken over when it names this host: the lock
being free proves that no process of that job is left. When it names another host it is refused:
whether file locks reach other hosts depends on the filesystem (NFS: usually; some mounts: no), so a
free lock does not prove that the job there has ended; the message names the file to delete once
you know it has.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from facegen.errors import FacegenError

LOCK_NAME = "render.lock"
READ_RETRIES = 20  # a holder writes its record just after taking the lock: wait up to 1 s for it


@dataclass
class FolderLock:
    """A held folder lock. `took_over`: a message when a killed job's lock file was taken over."""

    path: Path
    fd: int
    took_over: str | None = None

    def release(self) -> None:
        """Delete the lock file (if it is still this lock's) and let go of the lock."""
        if self.fd < 0:
            return
        try:
            if _same_file(self.path, self.fd):
                self.path.unlink()
        except OSError:
            pass  # the lock goes with the descriptor in any case; a stale file is taken over later
        finally:
            os.close(self.fd)
            self.fd = -1

    def for_workers(self) -> "InheritedLock":
        """What a spawned worker process is given so that it holds the lock as long as it lives."""
        return InheritedLock(self.fd)


class InheritedLock:
    """The lock's open file, handed to a process started by multiprocessing's spawn: pickled while the
    process starts, the descriptor is passed to it (as multiprocessing passes its pipes), and the new
    process keeps it open until it exits. Holding the same open file, it holds the same flock."""

    def __init__(self, fd: int):
        self.fd = fd

    def __reduce__(self):
        from multiprocessing import reduction

        return (_rebuild_inherited, (reduction.DupFd(self.fd),))


def _rebuild_inherited(dup) -> InheritedLock:
    return InheritedLock(dup.detach())


def acquire(out: Path, command: list[str] | None = None) -> FolderLock:
    """Take `out`'s lock (the folder must exist) or raise a FacegenError naming the job holding it."""
    path = Path(out) / LOCK_NAME
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise FacegenError(f"--out {out}: cannot create the lock file {path} ({e.strerror}); choose a folder "
                               "you can write to") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _wait_for_record(fd)
            os.close(fd)
            if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise FacegenError(_busy_message(out, path, holder)) from None
            raise FacegenError(f"--out {out}: cannot lock {path} ({e.strerror}): this filesystem does not support "
                               "file locks; render into a folder on a local disk") from None
        if _same_file(path, fd):
            break
        os.close(fd)  # locked a file its holder had just deleted on its way out: lock the new one
    previous = _read_record(fd)
    took_over = None
    if previous is not None:
        if previous.get("host") != socket.gethostname():
            os.close(fd)
            said = (f"says a render job on host {previous.get('host')} (pid {previous.get('pid')}, started "
                    f"{previous.get('started')}) writes this folder" if previous.get("host") else
                    "is left by a render job but cannot be read")
            raise FacegenError(
                f"--out {out}: the lock file {path} {said}; from {socket.gethostname()} facegen cannot tell whether "
                f"that job still runs. If no render job writes this folder any more, delete {path} and run the "
                "command again.")
        took_over = (f"{path}: took over the lock left by render job pid {previous.get('pid')} on this host "
                     f"(started {previous.get('started')}), which {_ended(previous.get('pid'))}")
    record = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "command": " ".join(command if command is not None else sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
    return FolderLock(path, fd, took_over)


def holder(out: Path) -> dict | None:
    """The record of the job holding `out`'s lock now, or None when no job holds it."""
    path = Path(out) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _wait_for_record(fd) or {}
    finally:
        os.close(fd)
    return None


def _busy_message(out: Path, path: Path, holder: dict | None) -> str:
    if not holder:
        who = f"another render job (its lock file {path} names no job yet)"
    else:
        who = (f"another render job: pid {holder.get('pid')} on host {holder.get('host')}, started "
               f"{holder.get('started')}" + (f" (`{holder['command']}`)" if holder.get("command") else ""))
        if holder.get("host") == socket.gethostname() and not _alive(holder.get("pid")):
            who += "; that process has ended and its render workers are stopping, try again in a few seconds"
    return (f"--out {out} is being written by {who}. One job writes a folder at a time: wait for that job to "
            "finish (or stop it), or choose another --out. Nothing was changed.")


def _same_file(path: Path, fd: int) -> bool:
    try:
        a, b = os.stat(path), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _read_record(fd: int) -> dict | None:
    """The lock file's record: None when it is empty, {} when it cannot be read."""
    try:
        text = os.pread(fd, 1 << 16, 0).decode()
    except (OSError, UnicodeDecodeError):
        return {}
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except ValueError:
        return {}
    return record if isinstance(record, dict) else {}


def _wait_for_record(fd: int) -> dict | None:
    for _ in range(READ_RETRIES):
        record = _read_record(fd)
        if record is not None:
            return record
        time.sleep(0.05)
    return None


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, TypeError, ProcessLookupError):
        return False
    except PermissionError:
        return True
    return True


def _ended(pid) -> str:
    if _alive(pid):  # the pid was reused: the lock was free, so no process of that job holds it
        return "is no longer running (its pid now belongs to another process)"
    return "is no longer running"
