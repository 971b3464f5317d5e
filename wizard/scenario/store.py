"""Saved scenarios: named sets of share parameters in one SQL table, through SQLAlchemy.

By default a SQLite file under the user's data directory
(`$XDG_DATA_HOME/poolwise/scenarios.sqlite`, created on first use); a team sets
`POOLWISE_STORE_URL` to any SQLAlchemy URL (e.g. `postgresql+psycopg://...`) to share one
database. Only `links.to_flat` parameters are stored, and those can never hold a secret.

Nothing is lost by a click: replacing or deleting a scenario first copies its earlier
parameters into `poolwise_scenario_versions` (the last KEEP_VERSIONS per name), from where
`restore` brings them back. Listing is paged in SQL (`page`, `count`), so the cost of a
screen does not grow with the size of the store.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError

from wizard.core.model import ScenarioError
from wizard.scenario import links, redact
from wizard.scenario.redact import credential_params

ENV_URL = "POOLWISE_STORE_URL"
MAX_NAME = 80
PAGE_SIZE = 25
KEEP_VERSIONS = 10  # earlier versions kept per name (replaced or deleted)
# A stored row longer than this is not read as a scenario. It is the JSON of the largest
# scenario links.from_flat accepts (every value at its maximum, the most services; each
# character escaped at most as two), so whatever saves can be loaded and restored.
MAX_PARAMS_TEXT = 2 * links.MAX_FLAT_CHARS + 8 * links.MAX_FLAT_KEYS + 2

metadata = MetaData()
scenarios = Table(
    "poolwise_scenarios",  # prefixed: a team may point the store at a shared database
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(MAX_NAME), nullable=False, unique=True),
    Column("params", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
versions = Table(
    "poolwise_scenario_versions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(MAX_NAME), nullable=False),
    Column("params", Text, nullable=False),
    Column("saved_at", DateTime(timezone=True), nullable=False),
    Column("replaced_at", DateTime(timezone=True), nullable=False),
    Index("ix_poolwise_scenario_versions_name", "name", "id"),
)


def credential_keys(params: Mapping[str, object]) -> list[str]:
    """Keys whose name or value looks like a password, token or URL with credentials."""
    return credential_params(params)


class StoreError(ValueError):
    """A bad scenario name, a missing scenario or parameters that are not a scenario."""


class StoreUnavailable(StoreError):
    """The store cannot be opened or read; the message names the cause and the place."""


@dataclass(frozen=True)
class SavedScenario:
    name: str
    params: dict[str, str]
    created_at: datetime
    updated_at: datetime
    problem: str | None = None  # why this row cannot be used (bad JSON, not an object...)


@dataclass(frozen=True)
class Version:
    id: int
    name: str
    saved_at: datetime
    replaced_at: datetime


def parse_params(text: object) -> tuple[dict[str, str], str | None]:
    """A stored row's parameters, or ({}, what is wrong with them)."""
    if not isinstance(text, str):
        return {}, "its parameters are not text"
    if len(text) > MAX_PARAMS_TEXT:
        return {}, f"its parameters are {len(text):,} characters long (at most " \
                   f"{MAX_PARAMS_TEXT:,})"
    try:
        value = json.loads(text)
    except ValueError as exc:
        return {}, f"its parameters are not valid JSON ({exc.msg} at character {exc.pos})"
    if not isinstance(value, dict):
        return {}, f"its parameters are a JSON {type(value).__name__}, not an object"
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        return {}, "its parameters are not all text values"
    return value, None


def describe_failure(exc: BaseException, url: str) -> str:
    """One sentence naming why the store failed, where (no password), and what to do."""
    where = _where(url)
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    low = text.lower()
    if isinstance(orig, PermissionError) or "readonly" in low or "read-only" in low \
            or "permission denied" in low:
        return (f"The scenario store {where} is read-only (a read-only directory or file): "
                "saving is not possible. Make it writable or set "
                f"{ENV_URL} to a writable database.")
    if "unable to open database" in low or isinstance(orig, (FileNotFoundError,
                                                             NotADirectoryError)):
        return (f"The scenario store {where} cannot be created or opened (missing or "
                f"read-only directory). Check the path or set {ENV_URL}.")
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return (f"The scenario store {where} is not a readable SQLite database (corrupt, or "
                f"another kind of file). Move it aside or set {ENV_URL}.")
    if "disk is full" in low or "no space" in low:
        return f"The scenario store {where} is out of disk space."
    return (f"The scenario store {where} failed: {redact.scrub(text, _password(url))[:200]}. "
            f"Check {ENV_URL} and that the database is up.")


def _password(url: str) -> str | None:
    try:
        return make_url(url).password
    except Exception:
        return None


def _where(url: str) -> str:
    try:
        u = make_url(url)
    except Exception:
        return "(unparsable URL)"
    if u.get_backend_name() == "sqlite":
        return f"file {u.database or ':memory:'}"
    return f"database {u.render_as_string(hide_password=True)}"


def default_url() -> str:
    """SQLite file under the user's data directory (XDG_DATA_HOME or ~/.local/share)."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return f"sqlite:///{Path(base) / 'poolwise' / 'scenarios.sqlite'}"


def store_url() -> str:
    """The configured store URL: POOLWISE_STORE_URL, else the default SQLite file."""
    return os.environ.get(ENV_URL) or default_url()


def check_name(name: object) -> str:
    """Return a valid scenario name or raise StoreError saying what is wrong with it."""
    if not isinstance(name, str) or not name:
        raise StoreError("Give the scenario a name (1 to 80 characters).")
    if len(name) > MAX_NAME:
        raise StoreError(f"The name is {len(name)} characters long; use at most {MAX_NAME}.")
    if name != name.strip():
        raise StoreError("The name must not start or end with a space.")
    if not name.isprintable():
        raise StoreError("The name contains a control character (tab, newline, ...); "
                         "use printable characters only.")
    return name


def _check_params(params: Mapping[str, str]) -> dict[str, str]:
    flat = {str(k): str(v) for k, v in params.items()}
    bad = credential_keys(flat)
    if bad:  # checked first: the scenario error below would echo the value
        raise StoreError(f"Not saved: {bad[0]!r} looks like it holds a password, token or "
                         "URL with credentials; a saved scenario never holds secrets.")
    try:
        links.from_flat(flat)  # only scenario parameters: never a URL or password
    except ScenarioError as exc:
        raise StoreError(f"Not a valid scenario: {exc}") from None
    return flat


def _now() -> datetime:
    return datetime.now(UTC)


def _aware(value: datetime) -> datetime:
    # SQLite gives naive datetimes back; everything is stored in UTC.
    return value if value.tzinfo else value.replace(tzinfo=UTC)


class ScenarioStore:
    """Save, list, load and delete named scenarios; safe under concurrent saves."""

    def __init__(self, url: str | None = None):
        self.url = url or store_url()
        try:
            parsed = make_url(self.url)
        except Exception:
            raise StoreUnavailable(f"{ENV_URL} is not a SQLAlchemy URL "
                                   "(e.g. postgresql+psycopg://user@host/db).") from None
        self.dialect = parsed.get_backend_name()
        kwargs: dict = {"pool_pre_ping": True}
        try:
            if self.dialect == "sqlite":
                db = parsed.database
                if db and db != ":memory:":
                    Path(db).expanduser().parent.mkdir(parents=True, exist_ok=True)
                # Writers wait for each other instead of failing with "database is locked".
                kwargs["connect_args"] = {"timeout": 30}
            self.engine: Engine = create_engine(self.url, **kwargs)
            if self.dialect == "sqlite":
                event.listen(self.engine, "connect", _sqlite_pragmas)
            try:
                metadata.create_all(self.engine)
            except IntegrityError:
                pass  # another process created the table at the same moment
        except (OSError, SQLAlchemyError) as exc:
            raise StoreUnavailable(describe_failure(exc, self.url)) from None

    def close(self) -> None:
        self.engine.dispose()

    def _guard(self, action: str):
        return _Guard(self.url, action)

    def save(self, name: str, params: Mapping[str, str]) -> None:
        """Insert or replace the scenario `name` atomically (last writer wins); a replaced
        version is kept in the versions table (see `versions`, `restore`)."""
        name = check_name(name)
        text = json.dumps(_check_params(params), sort_keys=True)
        if len(text) > MAX_PARAMS_TEXT:  # not for a scenario from_flat accepts: a backstop
            raise StoreError(f"Not saved: its parameters are {len(text):,} characters long "
                             f"(at most {MAX_PARAMS_TEXT:,}).")
        with self._guard("save"):
            self._save(name, text)

    def _archive(self, conn, name: str, now: datetime, differs_from: str | None) -> None:
        """Copy the current row of `name` into the versions table (one INSERT ... SELECT:
        the statement takes the write lock itself, so SQLite never upgrades a stale read)."""
        cond = [scenarios.c.name == name]
        if differs_from is not None:
            cond.append(scenarios.c.params != differs_from)
        sel = select(scenarios.c.name, scenarios.c.params, scenarios.c.updated_at,
                     literal(now, DateTime(timezone=True))).where(*cond)
        if conn.execute(insert(versions).from_select(
                ["name", "params", "saved_at", "replaced_at"], sel)).rowcount:
            keep = select(versions.c.id).where(versions.c.name == name) \
                .order_by(versions.c.id.desc()).limit(KEEP_VERSIONS).scalar_subquery()
            conn.execute(delete(versions).where(versions.c.name == name,
                                                versions.c.id.not_in(keep)))

    def _save(self, name: str, text: str) -> None:
        now = _now()
        values = {"name": name, "params": text, "created_at": now, "updated_at": now}
        if self.dialect in ("sqlite", "postgresql"):
            if self.dialect == "sqlite":
                from sqlalchemy.dialects.sqlite import insert as upsert
            else:
                from sqlalchemy.dialects.postgresql import insert as upsert
            stmt = upsert(scenarios).values(**values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[scenarios.c.name],
                set_={"params": stmt.excluded.params, "updated_at": stmt.excluded.updated_at})
            with self.engine.begin() as conn:
                self._archive(conn, name, now, text)
                conn.execute(stmt)
            return
        # Other databases: insert, and update if the name is already taken.
        for _ in range(5):
            try:
                with self.engine.begin() as conn:
                    conn.execute(insert(scenarios).values(**values))
                return
            except IntegrityError:
                with self.engine.begin() as conn:
                    self._archive(conn, name, now, text)
                    done = conn.execute(update(scenarios).where(scenarios.c.name == name)
                                        .values(params=text, updated_at=now)).rowcount
                if done:
                    return
        raise StoreError(f"Could not save {name!r}: it kept changing; try again.")

    def list(self) -> list[SavedScenario]:
        """Every saved scenario, by name (rows that cannot be read carry a `problem`)."""
        return self.page(0, None)

    @staticmethod
    def _matching(search: str):
        if not search:
            return []
        pattern = "%" + search.replace("\\", "\\\\").replace("%", "\\%") \
            .replace("_", "\\_") + "%"
        return [scenarios.c.name.ilike(pattern, escape="\\")]

    def page(self, offset: int = 0, limit: int | None = PAGE_SIZE,
             search: str = "") -> list[SavedScenario]:
        """One page of saved scenarios by name, optionally those whose name contains
        `search`; paged in SQL so a screen costs the same at any store size."""
        stmt = select(scenarios).where(*self._matching(search)).order_by(scenarios.c.name)
        if limit is not None:
            stmt = stmt.offset(max(int(offset), 0)).limit(max(int(limit), 1))
        with self._guard("read"), self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        out = []
        for r in rows:
            params, problem = parse_params(r.params)
            out.append(SavedScenario(r.name, params, _aware(r.created_at),
                                     _aware(r.updated_at), problem))
        return out

    def count(self, search: str = "") -> int:
        """How many saved scenarios (whose name contains `search`)."""
        stmt = select(func.count()).select_from(scenarios).where(*self._matching(search))
        with self._guard("read"), self.engine.connect() as conn:
            return int(conn.scalar(stmt) or 0)

    def exists(self, name: str) -> bool:
        with self._guard("read"), self.engine.connect() as conn:
            return conn.scalar(select(scenarios.c.id).where(scenarios.c.name == name)) \
                is not None

    def names(self) -> list[str]:
        with self._guard("read"), self.engine.connect() as conn:
            return list(conn.scalars(select(scenarios.c.name).order_by(scenarios.c.name)))

    def load(self, name: str) -> dict[str, str]:
        """The flat share parameters of one saved scenario."""
        with self._guard("read"), self.engine.connect() as conn:
            text = conn.scalar(select(scenarios.c.params).where(scenarios.c.name == name))
        if text is None:
            raise StoreError(f"No saved scenario is named {name!r}.")
        params, problem = parse_params(text)
        if problem:
            raise StoreError(f"The saved scenario {name!r} cannot be loaded: {problem}.")
        return params

    def delete(self, name: str) -> bool:
        """Delete one scenario (its parameters are kept as a version: `restore` undoes it);
        False if there was none of that name."""
        with self._guard("delete"), self.engine.begin() as conn:
            self._archive(conn, name, _now(), None)
            return bool(conn.execute(delete(scenarios).where(scenarios.c.name == name))
                        .rowcount)

    def versions(self, name: str) -> list[Version]:
        """Earlier versions of `name` (replaced or deleted), newest first."""
        stmt = select(versions.c.id, versions.c.name, versions.c.saved_at,
                      versions.c.replaced_at).where(versions.c.name == name) \
            .order_by(versions.c.id.desc())
        with self._guard("read"), self.engine.connect() as conn:
            return [Version(r.id, r.name, _aware(r.saved_at), _aware(r.replaced_at))
                    for r in conn.execute(stmt)]

    def restore(self, name: str, version_id: int | None = None) -> None:
        """Bring back an earlier version of `name` (default: the newest); the version it
        replaces is kept in turn."""
        stmt = select(versions.c.params).where(versions.c.name == name)
        stmt = stmt.where(versions.c.id == version_id) if version_id is not None else \
            stmt.order_by(versions.c.id.desc()).limit(1)
        with self._guard("read"), self.engine.connect() as conn:
            text = conn.scalar(stmt)
        if text is None:
            raise StoreError(f"No earlier version of {name!r} is kept.")
        params, problem = parse_params(text)
        if problem:
            raise StoreError(f"The earlier version of {name!r} cannot be restored: {problem}.")
        self.save(name, params)


class _Guard:
    """Turns a driver or file-system failure into StoreUnavailable naming its cause."""

    def __init__(self, url: str, action: str):
        self.url, self.action = url, action

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind, exc, tb) -> bool:
        if exc is not None and isinstance(exc, (OSError, DBAPIError)) \
                and not isinstance(exc, IntegrityError):
            raise StoreUnavailable(describe_failure(exc, self.url)) from None
        return False


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cur.close()
