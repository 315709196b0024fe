"""One instrument, one controller: an exclusive lock on a VISA resource while a run uses it.

The Procedure takes a lock file per resource (`fcntl.flock`, machine-wide, released by the
kernel when the process dies, even by `kill -9`, so it never goes stale). A second controller
gets `InstrumentBusy`, naming the process that holds the instrument, before anything is sent.
`lock_visa_session` takes VISA's own exclusive lock (NI-VISA: across machines); the Procedure
does not use it, because it would also lock out the run's guard process, whose own session
must be able to switch a hung run off (a shared lock with a key for the guard is next).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from .source import InstrumentError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: VISA's own lock only
    fcntl = None  # type: ignore[assignment]

#: Overrides the folder of the lock files (tests; several users sharing one machine).
LOCK_DIR_ENV = "IONTO_LOCK_DIR"
#: How long VISA's exclusive lock is waited for before the instrument counts as busy (ms).
VISA_LOCK_TIMEOUT_MS = 200


class InstrumentBusy(InstrumentError):
    """Another controller holds the instrument: refused before anything is sent to it."""


def canonical_resource(resource: str) -> str:
    """The resource's canonical name (GPIB::24 and gpib0::24::INSTR are one instrument)."""
    try:
        from pyvisa import rname

        return str(rname.parse_resource_name(resource.strip().upper()))
    except Exception:  # not a VISA name pyvisa knows: fall back to a normalized spelling
        return resource.strip().upper()


def lock_dir() -> Path:
    """The folder of the lock files: $IONTO_LOCK_DIR, else a machine-wide temp folder."""
    configured = os.environ.get(LOCK_DIR_ENV)
    return Path(configured) if configured else Path(tempfile.gettempdir()) / "ionto-locks"


class InstrumentLock:
    """An exclusive, per-resource lock file; `acquire()` raises InstrumentBusy if taken."""

    def __init__(self, resource: str, directory: Path | None = None) -> None:
        self.resource = canonical_resource(resource)
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.resource).strip("_") or "resource"
        self.path = (directory or lock_dir()) / f"{safe}.lock"
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise InstrumentBusy naming the holder; OSError if unusable."""
        if self._fd is not None or fcntl is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _umask(0):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise InstrumentBusy(f"{self.resource} is in use by another run ({holder}); one "
                                 f"instrument, one controller: wait for that run to end") \
                from None
        except OSError:
            os.close(fd)
            raise
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        self._fd = fd

    def keep_held(self, reason: str) -> None:
        """Keep the lock for the rest of this process and say why to anyone refused it.

        For a run whose final off was not confirmed: the instrument may still be sourcing, so
        no later run of this process (the GUI stays alive) may take it. The kernel releases
        the lock when the process ends; `release_kept` releases it after a confirmed off.
        """
        fd = self._fd
        if fd is None:
            return
        try:
            info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        except (OSError, ValueError):
            info = {}
        info["kept"] = reason
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(info).encode(), 0)
        _KEPT[self.resource] = self

    def release(self) -> None:
        """Release the lock (safe to call twice). The file stays; only the lock matters."""
        if _KEPT.get(self.resource) is self:
            del _KEPT[self.resource]
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing releases the flock

    def __enter__(self) -> InstrumentLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


#: Locks kept after an unconfirmed off, by canonical resource (this process only).
_KEPT: dict[str, InstrumentLock] = {}


def kept_lock(resource: str) -> InstrumentLock | None:
    """The lock this process keeps on `resource` after an unconfirmed off, if any."""
    return _KEPT.get(canonical_resource(resource))


def release_kept(resource: str, output_confirmed_off: bool) -> bool:
    """Release a kept lock, only on the operator's acknowledgement of a confirmed off."""
    lock = kept_lock(resource)
    if lock is None or not output_confirmed_off:
        return False
    lock.release()
    return True


def _read_holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"{}")
        holder = f"process {info['pid']} on {info['host']} since {info['since']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"
    if isinstance(info, dict) and info.get("kept"):
        holder += f", kept because {info['kept']}"
    return holder


class _umask:
    def __init__(self, mask: int) -> None:
        self.mask = mask
        self.old = 0

    def __enter__(self) -> None:
        self.old = os.umask(self.mask)

    def __exit__(self, *exc: object) -> None:
        os.umask(self.old)


def lock_visa_session(source: Any, resource: str) -> bool:
    """Take VISA's exclusive lock on the source's open session; True when held.

    InstrumentBusy when another session holds it; False (no error) when the VISA library or
    resource does not support locking (pyvisa-py, the simulator): the lock file then rules.
    """
    connection = getattr(getattr(source, "adapter", None), "connection", None)
    lock = getattr(connection, "lock_excl", None)
    if lock is None:
        return False
    try:
        from pyvisa import constants
        from pyvisa.errors import VisaIOError
    except ImportError:  # pragma: no cover
        return False
    try:
        lock(timeout=VISA_LOCK_TIMEOUT_MS)
    except VisaIOError as exc:
        if exc.error_code in (constants.StatusCode.error_resource_locked,
                              constants.StatusCode.error_timeout):
            raise InstrumentBusy(f"{canonical_resource(resource)} is locked by another VISA "
                                 f"session; one instrument, one controller") from None
        return False
    except (NotImplementedError, AttributeError, TypeError):
        return False
    return True
