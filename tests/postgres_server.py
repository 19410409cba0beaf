"""Start a throwaway PostgreSQL cluster for tests (initdb + pg_ctl on a free loopback port).

Returns None when no PostgreSQL server binaries are installed (.ci/run installs them).
"""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _bin(name: str) -> str | None:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def throwaway_postgres():
    initdb, pg_ctl = _bin("initdb"), _bin("pg_ctl")
    if not (initdb and pg_ctl):
        yield None
        return
    root = Path(tempfile.mkdtemp(prefix="tapestry-pg-"))
    data = root / "data"
    # PostgreSQL refuses to run as root: run it as the 'postgres' system user when we are root.
    as_user: list[str] = []
    user = os.environ.get("USER", "postgres")
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            yield None
            return
        shutil.chown(root, "postgres")
        as_user, user = ["runuser", "-u", "postgres", "--"], "postgres"
    port = _free_port()
    log = root / "server.log"
    try:
        subprocess.run([*as_user, initdb, "-D", str(data), "-A", "trust", "-U", user], check=True,
                       capture_output=True)
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-l", str(log), "-w", "-o",
                        f"-p {port} -k {root} -c listen_addresses=127.0.0.1", "start"], check=True,
                       capture_output=True)
        yield f"host=127.0.0.1 port={port} dbname=postgres user={user}"
    finally:
        subprocess.run([*as_user, pg_ctl, "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
