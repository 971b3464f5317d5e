"""Saved scenarios: named sets of share parameters in one SQL table, through SQLAlchemy.

By default a SQLite file under the user's data directory
(`$XDG_DATA_HOME/poolwise/scenarios.sqlite`, created on first use); a team sets
`POOLWISE_STORE_URL` to any SQLAlchemy URL (e.g. `postgresql+psycopg://...`) to share one
database. Only `share.to_flat` parameters are stored, and those can never hold a secret.
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
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import IntegrityError

from wizard import share
from wizard.model import ScenarioError
from wizard.redact import credential_params

ENV_URL = "POOLWISE_STORE_URL"
MAX_NAME = 80

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


def credential_keys(params: Mapping[str, object]) -> list[str]:
    """Keys whose name or value looks like a password, token or URL with credentials."""
    return credential_params(params)


class StoreError(ValueError):
    """A bad scenario name, a missing scenario or parameters that are not a scenario."""


@dataclass(frozen=True)
class SavedScenario:
    name: str
    params: dict[str, str]
    created_at: datetime
    updated_at: datetime


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
        share.from_flat(flat)  # only scenario parameters: never a URL or password
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
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        kwargs: dict = {"pool_pre_ping": True}
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

    def close(self) -> None:
        self.engine.dispose()

    def save(self, name: str, params: Mapping[str, str]) -> None:
        """Insert or replace the scenario `name` atomically (last writer wins)."""
        name = check_name(name)
        text = json.dumps(_check_params(params), sort_keys=True)
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
                    done = conn.execute(update(scenarios).where(scenarios.c.name == name)
                                        .values(params=text, updated_at=now)).rowcount
                if done:
                    return
        raise StoreError(f"Could not save {name!r}: it kept changing; try again.")

    def list(self) -> list[SavedScenario]:
        """Every saved scenario, by name."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(scenarios).order_by(scenarios.c.name)).all()
        return [SavedScenario(r.name, json.loads(r.params), _aware(r.created_at),
                              _aware(r.updated_at)) for r in rows]

    def names(self) -> list[str]:
        with self.engine.connect() as conn:
            return list(conn.scalars(select(scenarios.c.name).order_by(scenarios.c.name)))

    def load(self, name: str) -> dict[str, str]:
        """The flat share parameters of one saved scenario."""
        with self.engine.connect() as conn:
            text = conn.scalar(select(scenarios.c.params).where(scenarios.c.name == name))
        if text is None:
            raise StoreError(f"No saved scenario is named {name!r}.")
        return json.loads(text)

    def delete(self, name: str) -> bool:
        """Delete one scenario; False if there was none of that name."""
        with self.engine.begin() as conn:
            return bool(conn.execute(delete(scenarios).where(scenarios.c.name == name)).rowcount)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
    cur.close()
