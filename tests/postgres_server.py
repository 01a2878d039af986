"""A real PostgreSQL server for tests: Debian's ``postgresql`` package, a fresh cluster in a
temp folder, listening on a loopback port only; stopped by ``pg_ctl`` and its pid at the end."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from processes import LOOPBACK, free_port


def postgres_bin() -> Path:
    """The newest installed server's programs (``./dev setup`` installs the package)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_major)
    if not found:
        raise RuntimeError("PostgreSQL is not installed: ./dev setup installs Debian's postgresql")
    return Path(found[-1]).parent


def _major(path: str) -> int:
    return int(Path(path).parts[-3])


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str

    def url(self, db: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{db}"

    def create_database(self, name: str) -> None:
        import psycopg2

        connection = psycopg2.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password,
            dbname="postgres",
        )
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()

    def count(self, db: str, sql: str) -> int:
        import psycopg2

        connection = psycopg2.connect(
            host=self.host, port=self.port, user=self.user, password=self.password, dbname=db
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                row = cursor.fetchone()
                assert row is not None, sql
                return int(row[0])
        finally:
            connection.close()


def _as_owner(command: list[str], owner: str | None) -> list[str]:
    # The server refuses to run as root: as root, run it as the package's postgres user.
    return ["runuser", "-u", owner, "--", *command] if owner else command


@contextmanager
def postgres_running(
    user: str = "ocr_dagster", password: str = "test-only-secret"
) -> Iterator[Postgres]:
    """A new cluster with a password-authenticated superuser ``user`` on a free loopback port."""
    bindir = postgres_bin()
    owner = "postgres" if os.geteuid() == 0 else None
    base = Path(tempfile.mkdtemp(prefix="ocr-pg-"))
    data = base / "data"
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    if owner:
        ids = pwd.getpwnam(owner)
        os.chown(base, ids.pw_uid, ids.pw_gid)
        os.chown(pwfile, ids.pw_uid, ids.pw_gid)
    port = free_port()
    subprocess.run(
        _as_owner(
            [
                str(bindir / "initdb"),
                *("-D", str(data), "-U", user, "--pwfile", str(pwfile)),
                *("--auth", "scram-sha-256", "--encoding", "UTF8", "--no-sync"),
            ],
            owner,
        ),
        check=True,
        capture_output=True,
    )
    options = f"-c listen_addresses={LOOPBACK} -c port={port} -k {base} -c fsync=off"
    subprocess.run(
        _as_owner(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-o",
                options,
                "-l",
                str(base / "log"),
                "-w",
                "start",
            ],
            owner,
        ),
        check=True,
        capture_output=True,
    )
    pid = int((data / "postmaster.pid").read_text().split()[0])
    try:
        yield Postgres(LOOPBACK, port, user, password)
    finally:
        subprocess.run(
            _as_owner([str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], owner),
            capture_output=True,
        )
        _wait_gone(pid)
        shutil.rmtree(base, ignore_errors=True)


def _wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
