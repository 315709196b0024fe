"""A throwaway PostgreSQL server for the record's tests (stdlib only, also used by .ci/run).

`python3 tests/records/pgserver.py start` prints shell `export` lines (the URL and the data
directory); `... stop DIR` stops that server and removes it. initdb refuses root, so as root
the server runs as the `postgres` user. It listens on a unix socket only.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

URL_VAR = "IONTO_TEST_POSTGRES_URL"
DIR_VAR = "IONTO_TEST_POSTGRES_DIR"
BINDIR_VAR = "IONTO_TEST_POSTGRES_BINDIR"


def find_bindir() -> Path | None:
    """The directory holding initdb and pg_ctl ($IONTO_TEST_POSTGRES_BINDIR if set, else PATH,
    then Debian's layout, then the server binaries of the `pgserver` wheel in the test extras,
    so that a machine with only Python still tests the record on a real PostgreSQL)."""
    forced = os.environ.get(BINDIR_VAR)
    if forced is not None:
        found = Path(forced)
        return found if (found / "initdb").exists() and (found / "pg_ctl").exists() else None
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(candidate) / "initdb").exists() and (Path(candidate) / "pg_ctl").exists():
            return Path(candidate)
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.origin is not None:
        wheel = Path(spec.origin).parent / "pginstall" / "bin"
        if (wheel / "initdb").exists() and (wheel / "pg_ctl").exists():
            return wheel
    return None


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", "postgres", "--", *command]


def start(durable: bool = False) -> tuple[str, Path]:
    """Start a server in a new temporary directory; return (URL, directory).

    Tests run without fsync (throwaway data); `durable=True` keeps PostgreSQL's defaults, for
    benchmarks that should cost what a clinic's server costs.
    """
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError("no PostgreSQL binaries (initdb, pg_ctl) on this machine")
    root = Path(tempfile.mkdtemp(prefix="ionto-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    data, sock = root / "data", root
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.PIPE, "check": True}
    try:
        subprocess.run(_as_server_user([str(bindir / "initdb"), "-D", str(data), "-A", "trust",
                                        "-U", "postgres", "--no-sync", "-E", "UTF8"]), **quiet)
        options = f"-k {sock} -c listen_addresses='' -c max_connections=40"
        if not durable:
            options += " -c fsync=off -c full_page_writes=off -c synchronous_commit=off"
        subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(data), "-o", options,
                                        "-l", str(root / "server.log"), "-w", "-t", "30",
                                        "start"]), **quiet)
    except subprocess.CalledProcessError as exc:
        log = root / "server.log"
        detail = (exc.stderr or b"").decode(errors="replace").strip()
        if log.exists():
            detail += "\n" + log.read_text(errors="replace")[-2000:]
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"could not start a throwaway PostgreSQL: {detail}") from None
    return f"postgresql://postgres@/postgres?host={sock}&port=5432", root


def stop(root: str | Path) -> None:
    """Stop the server in `root` at once and remove the directory."""
    bindir = find_bindir()
    root = Path(root)
    if bindir is not None and (root / "data").exists():
        subprocess.run(_as_server_user([str(bindir / "pg_ctl"), "-D", str(root / "data"),
                                        "-m", "immediate", "-w", "stop"]),
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    if sys.argv[1:2] == ["start"]:
        url, where = start()
        print(f"export {URL_VAR}='{url}'\nexport {DIR_VAR}='{where}'")
    elif sys.argv[1:2] == ["stop"] and len(sys.argv) == 3:
        stop(sys.argv[2])
    else:
        sys.exit("usage: pgserver.py start | stop DIR")
