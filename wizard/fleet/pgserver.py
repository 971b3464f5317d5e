"""Throwaway PostgreSQL and PgBouncer servers for the benchmarks and the test suite.

Real servers on 127.0.0.1, never mocks. Used by bench/ and by the fixtures in
tests/conftest.py; other fixtures (module-scoped bouncers with special settings, say) can
use the context managers `postgres_server()` and `pgbouncer_server()` directly.

Everything runs as the `postgres` OS user when the tests run as root (PostgreSQL and
PgBouncer both refuse to run as root); as a normal user, they run as that user.
The binaries come from Debian's packages, installed by `make test` (scripts/setup.sh test).
"""

from __future__ import annotations

import atexit
import contextlib
import csv
import dataclasses
import glob
import io
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy.engine import URL

__all__ = [
    "Bouncer",
    "InfraMissingError",
    "PgServer",
    "ServerStartError",
    "free_port",
    "pgbouncer_server",
    "postgres_server",
]

PG_OS_USER = "postgres"
READY_TIMEOUT = 20.0  # seconds to wait for a server to accept connections
SETUP_HINT = "run `make test` (or `scripts/setup.sh test`) to install PostgreSQL and PgBouncer"


class InfraMissingError(RuntimeError):
    """A binary or OS user the test servers need is missing."""


class ServerStartError(RuntimeError):
    """A test server did not start; the message carries the tail of its log."""


# --------------------------------------------------------------------------- helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _is_root() -> bool:
    return os.geteuid() == 0


def _run_as_pg(cmd: list[str]) -> list[str]:
    """Prefix `cmd` so it runs as the postgres OS user when we are root."""
    if not _is_root():
        return cmd
    runuser = shutil.which("runuser") or shutil.which("runuser", path="/usr/sbin:/sbin")
    if runuser is None:
        raise InfraMissingError(f"`runuser` (util-linux) not found; {SETUP_HINT}")
    return [runuser, "-u", PG_OS_USER, "--", *cmd]


def _pg_os_user() -> pwd.struct_passwd | None:
    if not _is_root():
        return None
    try:
        return pwd.getpwnam(PG_OS_USER)
    except KeyError:
        raise InfraMissingError(
            f"OS user {PG_OS_USER!r} does not exist (the tests run as root and PostgreSQL "
            f"refuses root); {SETUP_HINT}"
        ) from None


def _make_tempdir(prefix: str) -> Path:
    # /tmp is world-traversable (TMPDIR may not be) and short (unix socket paths are
    # limited to ~107 bytes).
    base = os.environ.get("POOLWISE_TEST_TMP", "/tmp")
    path = Path(tempfile.mkdtemp(prefix=prefix, dir=base))
    owner = _pg_os_user()
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)
    os.chmod(path, 0o700)
    return path


def _write_as_owner(path: Path, text: str, mode: int = 0o600) -> None:
    path.write_text(text)
    os.chmod(path, mode)
    owner = _pg_os_user()
    if owner is not None:
        os.chown(path, owner.pw_uid, owner.pw_gid)


def _version_key(path: str) -> tuple[int, ...]:
    m = re.search(r"/postgresql/([0-9.]+)/bin", path)
    return tuple(int(x) for x in m.group(1).split(".") if x) if m else (0,)


def find_pg_bindir() -> Path:
    """Directory holding initdb/pg_ctl/postgres of the newest installed PostgreSQL."""
    candidates: list[str] = []
    if os.environ.get("POOLWISE_PG_BINDIR"):
        candidates.append(os.environ["POOLWISE_PG_BINDIR"])
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10
            ).stdout.strip()
            if out:
                candidates.append(out)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).parent))
    for c in candidates:
        d = Path(c)
        if all((d / b).is_file() for b in ("initdb", "pg_ctl", "postgres", "pg_isready")):
            return d
    where = ", ".join(candidates) or "/usr/lib/postgresql/*/bin"
    raise InfraMissingError(
        f"PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in {where}; {SETUP_HINT}"
    )


def find_pgbouncer() -> str:
    exe = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/bin")
    if exe is None:
        raise InfraMissingError(f"`pgbouncer` binary not found; {SETUP_HINT}")
    return exe


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_tcp(host: str, port: int, timeout: float, alive=lambda: True) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            return False
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=1):
            return True
        time.sleep(0.05)
    return False


def _url(driver, user, password, host, port, database) -> str:
    return URL.create(
        driver, username=user, password=password, host=host, port=port, database=database
    ).render_as_string(hide_password=False)


# --------------------------------------------------------------------------- PostgreSQL


class _Endpoint:
    """URLs of a running server (PostgreSQL, or PgBouncer in front of it) for a role: the
    app role unless `user` is given, with the password the server set up for that role.
    The dataclasses below hold host, port, user, password, database and the admin role's."""

    def _password_for(self, user: str | None, password: str | None) -> tuple[str, str]:
        user = user or self.user
        if password is None:
            password = self.admin_password if user == self.admin_user else self.password
        return user, password

    def url(
        self,
        driver: str = "postgresql+asyncpg",
        user: str | None = None,
        *,
        password: str | None = None,
        database: str | None = None,
    ) -> str:
        """SQLAlchemy URL string, for the app role unless `user` is given."""
        user, password = self._password_for(user, password)
        return _url(driver, user, password, self.host, self.port, database or self.database)

    def dsn(
        self,
        user: str | None = None,
        *,
        password: str | None = None,
        database: str | None = None,
    ) -> str:
        """libpq-style DSN for `asyncpg.connect(dsn)`, for the app role unless `user` is given."""
        return self.url("postgresql", user, password=password, database=database)


@dataclasses.dataclass(frozen=True)
class PgServer(_Endpoint):
    """A running throwaway PostgreSQL cluster (superuser `admin_user`, app role `user`)."""

    host: str
    port: int
    user: str
    password: str
    database: str
    admin_user: str
    admin_password: str
    socket_dir: str
    bindir: str = dataclasses.field(default="", compare=False)
    data_dir: str = dataclasses.field(default="", compare=False)
    log_file: str = dataclasses.field(default="", compare=False)

    def psql(self, sql: str, *, database: str | None = None, check: bool = True) -> str:
        """Run `sql` (may hold several statements) as the superuser; return psql's stdout.

        Output is unaligned, tuples only (`-At`): one row per line, columns split by `|`.
        """
        psql = str(Path(self.bindir) / "psql") if self.bindir else "psql"
        if not Path(psql).is_file():
            psql = shutil.which("psql") or psql
        cmd = [
            psql, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
            "-h", self.socket_dir, "-p", str(self.port),
            "-U", self.admin_user, "-d", database or self.database,
        ]  # fmt: skip
        env = {**os.environ, "PGPASSWORD": self.admin_password, "PGCONNECT_TIMEOUT": "10"}
        proc = subprocess.run(cmd, input=sql, capture_output=True, text=True, env=env, timeout=120)
        if check and proc.returncode != 0:
            raise RuntimeError(f"psql failed ({proc.returncode}): {proc.stderr.strip()}\n{sql}")
        return proc.stdout


def _pg_conf(port: int, socket_dir: Path, settings: dict[str, object]) -> str:
    conf: dict[str, object] = {
        "listen_addresses": "127.0.0.1",
        "port": port,
        "unix_socket_directories": str(socket_dir),
        "max_connections": 60,
        "superuser_reserved_connections": 3,
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "shared_buffers": "128MB",
        "password_encryption": "scram-sha-256",
        "logging_collector": "off",
        "log_min_messages": "warning",
        "log_line_prefix": "%m [%p] %q%u@%d ",
        "timezone": "UTC",
    }
    conf.update(settings)
    lines = ["", "# --- poolwise test settings ---"]
    for k, v in conf.items():
        if isinstance(v, bool):
            v = "on" if v else "off"
        if isinstance(v, int):
            lines.append(f"{k} = {v}")
        else:
            lines.append(f"{k} = '{str(v).replace(chr(39), chr(39) * 2)}'")
    return "\n".join(lines) + "\n"


def _stop_postgres(bindir: Path, data_dir: Path) -> None:
    pg_ctl = str(bindir / "pg_ctl")
    if not (data_dir / "postmaster.pid").exists():
        return
    for mode in ("fast", "immediate"):
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            r = subprocess.run(
                _run_as_pg([pg_ctl, "-D", str(data_dir), "-m", mode, "-t", "15", "-w", "stop"]),
                capture_output=True, cwd="/", timeout=30,
            )  # fmt: skip
            if r.returncode == 0:
                return
    # Last resort: the postmaster pid is the first line of postmaster.pid.
    with contextlib.suppress(Exception):
        pid = int((data_dir / "postmaster.pid").read_text().splitlines()[0])
        os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def postgres_server(
    *,
    user: str = "poolwise_app",
    database: str = "poolwise",
    admin_user: str = "poolwise_admin",
    settings: dict[str, object] | None = None,
) -> Iterator[PgServer]:
    """Start a throwaway PostgreSQL cluster; stop it and delete its files on exit.

    `settings` are extra postgresql.conf entries (they override the defaults above).
    """
    bindir = find_pg_bindir()
    owner = _pg_os_user()  # raises InfraMissingError when root and no postgres user
    tmp = _make_tempdir("poolwise-pg-")
    data_dir, socket_dir, log_file = tmp / "data", tmp / "sock", tmp / "postgres.log"
    admin_password = secrets.token_urlsafe(18)
    app_password = secrets.token_urlsafe(18)
    started = False

    def cleanup() -> None:
        nonlocal started
        if started:
            _stop_postgres(bindir, data_dir)
            started = False
        shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(cleanup)
    try:
        socket_dir.mkdir()
        if owner is not None:
            os.chown(socket_dir, owner.pw_uid, owner.pw_gid)
        pwfile = tmp / "pwfile"
        _write_as_owner(pwfile, admin_password + "\n")
        r = subprocess.run(
            _run_as_pg([
                str(bindir / "initdb"), "-D", str(data_dir), "-U", admin_user,
                f"--pwfile={pwfile}", "--auth-local=scram-sha-256",
                "--auth-host=scram-sha-256", "-E", "UTF8", "--no-locale", "--no-sync",
            ]),
            capture_output=True, text=True, cwd=tmp, timeout=120,
        )  # fmt: skip
        pwfile.unlink()
        if r.returncode != 0:
            raise ServerStartError(f"initdb failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
        base_conf = (data_dir / "postgresql.conf").read_text()

        port = 0
        for attempt in range(3):
            port = free_port()
            (data_dir / "postgresql.conf").write_text(
                base_conf + _pg_conf(port, socket_dir, settings or {})
            )
            r = subprocess.run(
                _run_as_pg([
                    str(bindir / "pg_ctl"), "-D", str(data_dir), "-l", str(log_file),
                    "-w", "-t", str(int(READY_TIMEOUT)), "start",
                ]),
                capture_output=True, text=True, cwd=tmp, timeout=READY_TIMEOUT + 15,
            )  # fmt: skip
            if r.returncode == 0:
                started = True
                break
            started = (data_dir / "postmaster.pid").exists()
            log = _log_tail(log_file)
            if started:
                _stop_postgres(bindir, data_dir)
                started = False
            if ("could not bind" in log or "already in use" in log) and attempt < 2:
                continue
            raise ServerStartError(
                f"PostgreSQL did not start on 127.0.0.1:{port}:\n{r.stdout}{r.stderr}\n"
                f"--- {log_file} ---\n{log}"
            )
        else:
            raise ServerStartError("PostgreSQL: no free port after 3 attempts")

        # Bounded readiness check over TCP (pg_ctl -w already waited on the socket).
        deadline = time.monotonic() + READY_TIMEOUT
        while True:
            ready = subprocess.run(
                [str(bindir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port),
                 "-t", "2"],
                capture_output=True, timeout=10,
            )  # fmt: skip
            if ready.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise ServerStartError(
                    f"PostgreSQL not ready on 127.0.0.1:{port} after {READY_TIMEOUT:.0f} s\n"
                    f"--- {log_file} ---\n{_log_tail(log_file)}"
                )
            time.sleep(0.1)

        server = PgServer(
            host="127.0.0.1",
            port=port,
            user=user,
            password=app_password,
            database=database,
            admin_user=admin_user,
            admin_password=admin_password,
            socket_dir=str(socket_dir),
            bindir=str(bindir),
            data_dir=str(data_dir),
            log_file=str(log_file),
        )
        server.psql(
            f"CREATE ROLE {user} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
            f"PASSWORD '{app_password}';\n"
            f"CREATE DATABASE {database} OWNER {user};\n",
            database="postgres",
        )
        yield server
    finally:
        cleanup()
        atexit.unregister(cleanup)


# --------------------------------------------------------------------------- PgBouncer


@dataclasses.dataclass(frozen=True)
class Bouncer(_Endpoint):
    """A running PgBouncer in front of a PgServer (same role, password and database)."""

    host: str
    port: int
    user: str
    password: str
    database: str
    pool_mode: str
    admin_user: str = ""
    admin_password: str = dataclasses.field(default="", repr=False)
    settings: tuple[tuple[str, str], ...] = ()
    config_file: str = dataclasses.field(default="", compare=False)
    log_file: str = dataclasses.field(default="", compare=False)
    pid: int = dataclasses.field(default=0, compare=False)

    def admin(self, command: str) -> list[dict[str, str]]:
        """Run a console command (e.g. "SHOW POOLS") on the `pgbouncer` admin database.

        Uses psql (the console speaks only the simple query protocol); returns rows as dicts.
        """
        psql = shutil.which("psql") or "psql"
        cmd = [
            psql, "-X", "-q", "--csv", "-h", self.host, "-p", str(self.port),
            "-U", self.admin_user, "-d", "pgbouncer", "-c", command,
        ]  # fmt: skip
        env = {**os.environ, "PGPASSWORD": self.admin_password, "PGCONNECT_TIMEOUT": "10"}
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"pgbouncer admin {command!r} failed: {proc.stderr.strip()}")
        return list(csv.DictReader(io.StringIO(proc.stdout)))


def _userlist_line(user: str, password: str) -> str:
    return '"{}" "{}"\n'.format(user.replace('"', '""'), password.replace('"', '""'))


@contextlib.contextmanager
def pgbouncer_server(
    pg: PgServer, pool_mode: str = "transaction", **settings: object
) -> Iterator[Bouncer]:
    """Start PgBouncer in front of `pg`; stop it and delete its files on exit.

    `settings` are extra/overriding [pgbouncer] ini entries, e.g. default_pool_size=2.
    """
    if pool_mode not in ("session", "transaction", "statement"):
        raise ValueError(f"pool_mode must be session, transaction or statement, not {pool_mode!r}")
    exe = find_pgbouncer()
    owner = _pg_os_user()
    tmp = _make_tempdir("poolwise-bouncer-")
    ini, userlist = tmp / "pgbouncer.ini", tmp / "userlist.txt"
    log_file, pidfile = tmp / "pgbouncer.log", tmp / "pgbouncer.pid"
    proc: subprocess.Popen | None = None

    def cleanup() -> None:
        nonlocal proc
        if proc is not None and proc.poll() is None:
            proc.terminate()  # SIGTERM: immediate shutdown (SIGINT would wait for clients)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        proc = None
        shutil.rmtree(tmp, ignore_errors=True)

    atexit.register(cleanup)
    try:
        # Plain-text passwords in auth_file: PgBouncer 1.18 needs them (or the client's
        # SCRAM keys) to log in to a PostgreSQL server whose roles have SCRAM secrets.
        _write_as_owner(
            userlist,
            _userlist_line(pg.user, pg.password) + _userlist_line(pg.admin_user, pg.admin_password),
        )
        conf: dict[str, object] = {
            "listen_addr": "127.0.0.1",
            "unix_socket_dir": "",
            "auth_type": "scram-sha-256",
            "auth_file": str(userlist),
            "pool_mode": pool_mode,
            "default_pool_size": 10,
            "min_pool_size": 0,
            "reserve_pool_size": 0,
            "max_client_conn": 400,
            "ignore_startup_parameters": "extra_float_digits",
            "admin_users": pg.admin_user,
            "stats_users": pg.user,
            "logfile": str(log_file),
            "pidfile": str(pidfile),
            "server_tls_sslmode": "disable",
            "server_login_retry": 1,
            "log_connections": 0,
            "log_disconnections": 0,
        }
        conf.update(settings)

        for attempt in range(3):
            port = free_port()
            conf["listen_port"] = port
            body = "\n".join(f"{k} = {v}" for k, v in conf.items())
            _write_as_owner(
                ini,
                "[databases]\n"
                f"{pg.database} = host={pg.host} port={pg.port} dbname={pg.database}\n"
                f"* = host={pg.host} port={pg.port}\n"
                "\n[pgbouncer]\n" + body + "\n",
            )
            log_file.unlink(missing_ok=True)
            popen_kwargs: dict[str, object] = {}
            if owner is not None:
                popen_kwargs = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
            proc = child = subprocess.Popen(
                [exe, str(ini)],
                cwd=tmp,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                **popen_kwargs,
            )
            if _wait_tcp("127.0.0.1", port, READY_TIMEOUT, alive=lambda p=child: p.poll() is None):
                break
            log = _log_tail(log_file)
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
            proc = None
            if "Address already in use" in log and attempt < 2:
                continue
            raise ServerStartError(
                f"pgbouncer did not start on 127.0.0.1:{port}\n--- {log_file} ---\n{log}"
            )

        yield Bouncer(
            host="127.0.0.1",
            port=port,
            user=pg.user,
            password=pg.password,
            database=pg.database,
            pool_mode=pool_mode,
            admin_user=pg.admin_user,
            admin_password=pg.admin_password,
            settings=tuple((k, str(v)) for k, v in settings.items()),
            config_file=str(ini),
            log_file=str(log_file),
            pid=proc.pid,
        )
    finally:
        cleanup()
        atexit.unregister(cleanup)
