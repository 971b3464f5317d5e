"""`observe` against the real PostgreSQL and PgBouncer: known loads, recovered busy means.

The loads (wizard/fleet/loadgen.py) have a known offered load: open-loop Poisson arrivals
at rps with a pg_sleep hold (rps x hold busy connections, Little's law) and n connections
always busy. observe must recover each within 20 %, directly and through PgBouncer in
transaction mode; `--write` then `recommend` sizes from it. Samples 50 ms apart (the hold
time) are nearly independent: the mean of 60 samples of a Poisson load of a busy
connections has a standard deviation of about sqrt(a / 60), 5.8 % at a = 5 and 6.5 % at
a = 4, so 20 % is more than 3 standard deviations.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest

from wizard.core.measured import as_load
from wizard.core.model import Load, MeasuredLoad, ScenarioError
from wizard.fleet import loadgen
from wizard.fleet.pgserver import Bouncer, PgServer
from wizard.live import observe as obs
from wizard.live.target import parse_target
from wizard.scenario import files

pytestmark = pytest.mark.db

ROOT = Path(__file__).resolve().parents[1]
RPS, HOLD_MS = 100.0, 50.0  # open loop: 5.0 busy connections
BUSY_N = 2  # always busy: 2.0


def target(s: PgServer | Bouncer, user: str | None = None, password: str | None = None):
    user = user or s.user
    return parse_target(f"postgresql://{user}@{s.host}:{s.port}/{s.database}",
                        env={"POOLWISE_LIVE_PASSWORD": password or s.password})


async def _load_and_observe(load: PgServer | Bouncer, watch: PgServer | Bouncer,
                            rps: float = RPS, seconds: float = 3.0):
    acc = obs.Accumulator()
    t = target(watch)

    ready = [asyncio.Event(), asyncio.Event()]

    async def watcher() -> None:
        for event in ready:  # both generators' pools are open and their load started
            await event.wait()
        await asyncio.sleep(0.3)
        await obs.observe(t, acc, seconds=seconds, interval_ms=50, visitor=False)

    gen = await asyncio.gather(
        loadgen.open_loop(load.dsn(), "poisson-svc", rps, HOLD_MS, seconds + 1.5,
                          on_start=ready[0].set),
        loadgen.always_busy(load.dsn(), "busy-svc", BUSY_N, seconds + 1.5,
                            on_start=ready[1].set),
        watcher())
    return obs.result(t, acc, obs.utc_now(), 50), gen


def _by_name(o: obs.Observation) -> dict[str, obs.ServiceObservation]:
    return {s.application_name: s for s in o.services}


def _within(measured: float, true: float, tolerance: float = 0.2) -> bool:
    return abs(measured - true) <= tolerance * true


def test_recovers_busy_means_direct(pg: PgServer) -> None:
    o, (poisson, busy, _) = asyncio.run(_load_and_observe(pg, pg))
    seen = _by_name(o)
    assert poisson.errors == 0 and poisson.arrivals > 0
    assert _within(seen["poisson-svc"].busy_mean, RPS * HOLD_MS / 1000), seen["poisson-svc"]
    assert _within(seen["busy-svc"].busy_mean, BUSY_N), seen["busy-svc"]
    assert seen["busy-svc"].busy_max == BUSY_N and seen["busy-svc"].open_max == BUSY_N
    assert seen["poisson-svc"].busy_p95 >= seen["poisson-svc"].busy_mean
    assert seen["poisson-svc"].open_max == 16  # the generator's pool, held open
    assert obs.APP_NAME not in seen  # its own connection is excluded
    assert 40 <= o.samples <= 62 and 2.5 <= o.seconds <= 3.5


def test_recovers_busy_means_through_pgbouncer(pgbouncer_factory) -> None:
    bouncer = pgbouncer_factory("transaction", default_pool_size=24)
    o, _ = asyncio.run(_load_and_observe(bouncer, bouncer, rps=80.0))
    seen = _by_name(o)
    # Busy server connections carry the client's application_name while they serve it.
    assert _within(seen["poisson-svc"].busy_mean, 80.0 * HOLD_MS / 1000), seen["poisson-svc"]
    assert _within(seen["busy-svc"].busy_mean, BUSY_N), seen["busy-svc"]
    assert any("transaction pooler" in n for n in o.notes)  # server port != URL port


def test_reset_all_behind_pgbouncer_loses_the_name(pgbouncer_factory) -> None:
    """asyncpg's own Pool runs RESET ALL on release: behind PgBouncer 1.18 the client's
    application_name becomes the server default (''), so its busy connections are no
    longer counted under its name (SQLAlchemy's pool does not RESET ALL)."""
    bouncer = pgbouncer_factory("transaction", default_pool_size=24)
    t = target(bouncer)

    async def main() -> obs.Observation:
        acc = obs.Accumulator()

        ready = asyncio.Event()

        async def watcher() -> None:
            await ready.wait()
            await asyncio.sleep(0.3)
            await obs.observe(t, acc, seconds=1.5, interval_ms=50, visitor=False)

        await asyncio.gather(loadgen.open_loop(bouncer.dsn(), "reset-svc", 60.0, HOLD_MS, 2.2,
                                               reset_all=True, on_start=ready.set), watcher())
        return obs.result(t, acc, obs.utc_now(), 50)

    seen = _by_name(asyncio.run(main()))
    named = seen["reset-svc"].busy_mean if "reset-svc" in seen else 0.0
    assert named < 0.5 * 60.0 * HOLD_MS / 1000, seen  # most of its 3.0 busy went unnamed
    assert seen["(none)"].busy_mean > 1.0


def test_pgbouncer_118_sets_the_clients_application_name(pg: PgServer,
                                                          pgbouncer_factory) -> None:
    """One server connection, two clients: while each runs, the backend shows that client's
    application_name; idle, it keeps the last client's."""
    bouncer = pgbouncer_factory("transaction", default_pool_size=1)

    async def main() -> list[tuple[str, str, int]]:
        admin = await asyncpg.connect(pg.dsn(pg.admin_user))
        # Connections earlier tests left open are not the pooler's: only new backends count.
        before = [r["pid"] for r in await admin.fetch("SELECT pid FROM pg_stat_activity")]
        a = await asyncpg.connect(bouncer.dsn(), statement_cache_size=0,
                                  server_settings={"application_name": "svc-a"})
        b = await asyncpg.connect(bouncer.dsn(), statement_cache_size=0,
                                  server_settings={"application_name": "svc-b"})
        q = ("SELECT application_name, state, pid FROM pg_stat_activity WHERE pid <> "
             "pg_backend_pid() AND usename = $1 AND backend_type = 'client backend' "
             "AND pid <> ALL($2::int[])")
        seen = []
        try:
            for client in (a, b):
                run = asyncio.create_task(client.execute("SELECT pg_sleep(0.4)"))
                await asyncio.sleep(0.2)
                seen += [(r["application_name"], r["state"], r["pid"])
                         for r in await admin.fetch(q, pg.user, before)]
                await run
                assert await client.fetchval("SELECT current_setting('application_name')") \
                    in ("svc-a", "svc-b")
            seen += [(r["application_name"], r["state"], r["pid"])
                     for r in await admin.fetch(q, pg.user, before)]
        finally:
            for c in (a, b, admin):
                await c.close()
        return seen

    seen = asyncio.run(main())
    assert [(n, s) for n, s, _ in seen] == [("svc-a", "active"), ("svc-b", "active"),
                                           ("svc-b", "idle")]
    assert len({pid for _, _, pid in seen}) == 1  # the same server connection throughout


def _cli(args: list[str], env: dict[str, str]) -> subprocess.Popen:
    base = {k: v for k, v in os.environ.items() if not k.startswith("POOLWISE_LIVE_")}
    return subprocess.Popen([sys.executable, "-m", "wizard", *args], cwd=ROOT,
                            env={**base, **env}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _observe_json(url: str, pg: PgServer, *flags: str) -> dict:
    """`observe --json` for 3 s, the password from the environment: what it answered, after
    checking that it exited 0 and printed the password nowhere."""
    proc = _cli(["observe", "--url", url, "--seconds", "3", "--interval-ms", "50", "--json",
                 *flags], {"POOLWISE_LIVE_PASSWORD": pg.password})
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert pg.password not in out + err
    return json.loads(out)


def _background_load(pg: PgServer, seconds: float) -> threading.Thread:
    """The two loads in a thread, returned once both have started."""
    started = [threading.Event(), threading.Event()]

    async def both() -> None:
        await asyncio.gather(
            loadgen.open_loop(pg.dsn(), "poisson-svc", RPS, HOLD_MS, seconds,
                              on_start=started[0].set),
            loadgen.always_busy(pg.dsn(), "busy-svc", BUSY_N, seconds,
                                on_start=started[1].set))

    thread = threading.Thread(target=lambda: asyncio.run(both()), daemon=True)
    thread.start()
    assert all(e.wait(20) for e in started)
    time.sleep(0.3)
    return thread


SCENARIO = """# two services on a self-hosted server
provider = "self-hosted"
max_connections = 200  # ours

[[service]]
name = "poisson-svc"  # the web tier
app_instances = 2
rps = 50       # per instance: 2 x 50 = 100/s, the true load
hold_ms = 50

[[service]]
name = "busy-svc"
kind = "worker"
app_instances = 1
"""


def test_write_then_recommend_sizes_from_the_measurement(pg: PgServer, tmp_path) -> None:
    path = tmp_path / "estate.toml"
    path.write_text(SCENARIO)
    load = _background_load(pg, 5.0)
    url = f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}"
    d = _observe_json(url, pg, "--scenario", str(path), "--write", "--processes", "busy-svc=3")
    load.join(10)
    assert set(d) >= {"seconds", "samples", "services"}
    assert d["written"]["services"] == ["poisson-svc", "busy-svc"]
    text = path.read_text()
    assert "# two services on a self-hosted server" in text and "# the web tier" in text
    assert "[service.measured]" in text and pg.password not in text
    s = files.load(path)
    web = s.services[0].load
    assert web.measured is not None and web.measured.processes == 2  # the file's fleet
    assert s.services[1].load.measured.processes == 3  # as given
    assert _within(web.measured.busy_mean, 5.0)
    rec = subprocess.run([sys.executable, "-m", "wizard", "recommend", "--scenario", str(path),
                          "--json"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert rec.returncode == 0, rec.stderr
    r = json.loads(rec.stdout)
    svc = {v["name"]: v for v in r["services"]}
    assert svc["poisson-svc"]["load"]["source"] == "measured"
    assert svc["poisson-svc"]["load"]["measured"]["where"] == f"{pg.host}:{pg.port}/{pg.database}"
    assert svc["poisson-svc"]["load"]["measured"]["guess_busy"] == pytest.approx(2.5)
    # The true rps x hold gives the same pool_size, or within one. The totals may differ
    # by more: the measured p95 of a light load can be above twice its mean.
    from wizard.core.plan import recommend
    guess = recommend(files.parse(SCENARIO)).service("poisson-svc").rec.engine("primary")
    measured = svc["poisson-svc"]["engines"][0]
    assert abs(measured["pool_size"] - guess.pool_size) <= 1, (measured, guess)
    assert abs(measured["pool_size"] + measured["max_overflow"]
               - guess.pool_size - guess.max_overflow) <= 2, (measured, guess)
    txt = subprocess.run([sys.executable, "-m", "wizard", "recommend", "--scenario", str(path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=60).stdout
    assert "Measured load (poolwise observe" in txt and "the guess" in txt.lower()


def test_ctrl_c_reports_what_it_has(pg: PgServer) -> None:
    url = f"postgresql://{pg.user}@{pg.host}:{pg.port}/{pg.database}"
    proc = _cli(["observe", "--url", url, "--seconds", "60", "--interval-ms", "50", "--json"],
                {"POOLWISE_LIVE_PASSWORD": pg.password})
    time.sleep(2.5)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    d = json.loads(out)
    assert d["interrupted"] is True and d["samples"] > 0 and d["seconds"] < 10


@pytest.mark.parametrize("flags, words", [
    (["--seconds", "0"], "--seconds must be in (0, 3600]"),
    (["--seconds", "3601"], "--seconds must be in (0, 3600]"),
    (["--seconds", "nan"], "--seconds must be in (0, 3600]"),
    (["--interval-ms", "49"], "--interval-ms must be 50.."),
    (["--interval-ms", "inf"], "--interval-ms must be 50.."),
    (["--write"], "--write needs --scenario"),
    (["--processes", "api=0"], "--processes must be NAME=N"),
    (["--processes", "api"], "--processes must be NAME=N"),
])
def test_out_of_range_is_one_line_exit_2(flags: list[str], words: str) -> None:
    proc = _cli(["observe", "--url", "postgresql://u@127.0.0.1:1/db", *flags], {})
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and words in err


def test_huge_application_name_is_bounded(pg: PgServer) -> None:
    name = "x" * 5000 + "\x1b[31m"

    async def main() -> obs.Observation:
        hog = await asyncpg.connect(pg.dsn(), server_settings={"application_name": name})
        acc = obs.Accumulator()
        try:
            await obs.observe(target(pg), acc, seconds=0.3, interval_ms=50, visitor=False)
        finally:
            await hog.close()
        return obs.result(target(pg), acc, obs.utc_now(), 50)

    o = asyncio.run(main())
    names = [s.application_name for s in o.services]
    assert names and all(len(n) <= 64 and n.isprintable() for n in names)
    assert any(n.startswith("xxxx") for n in names)


def test_accumulator_counts_absent_samples_as_zero_and_bounds_names() -> None:
    acc = obs.Accumulator()
    for i in range(20):
        acc.add([("a", 3, 2 if i < 19 else 9, 0, 0)] + ([("b", 1, 1, 1, 0)] if i < 5 else []))
    seen = {s.application_name: s for s in acc.services()}
    assert seen["a"].busy_mean == pytest.approx((19 * 2 + 9) / 20)
    assert seen["a"].busy_p95 == 2 and seen["a"].busy_max == 9
    assert seen["b"].busy_mean == pytest.approx(5 / 20) and seen["b"].samples == 5
    assert seen["b"].idle_in_transaction_max == 1
    many = obs.Accumulator()
    many.add([(f"n{i}", 1, 1, 0, 0) for i in range(obs.MAX_NAMES + 50)] + [(None, 7, 3, 0, 0)])
    names = {s.application_name: s for s in many.services()}
    assert len(names) == obs.MAX_NAMES + 1 and names[obs.OTHERS].open_max == 57


def test_a_hostile_name_is_kept_printable_and_shown_on_one_line() -> None:
    from wizard.live.observe_cli import render
    acc = obs.Accumulator()
    acc.add([("evil\x1b[31m\nline\u202e", 1, 1, 0, 0)])
    (svc,) = acc.services()
    assert svc.application_name.isprintable() and "\x1b" not in svc.application_name
    t = target(PgServer("127.0.0.1", 5432, "u", "pw", "db", "a", "apw", "/tmp"))
    text = render(obs.result(t, acc, obs.utc_now(), 100))
    assert len(text.splitlines()) == 3 and "evil" in text  # head, columns, one row


def test_measured_keys_are_strict(tmp_path) -> None:
    base = SCENARIO + "\n[service.measured]\n"
    good = ('busy_mean = 2.0\nbusy_p95 = 3\nprocesses = 1\nat = "2026-12-06T03:00:00Z"\n'
            'where = "db:5432/app"\n')
    assert files.parse(base + good).services[1].load.measured.busy_mean == 2.0
    for bad, words in [
        (good.replace("2.0", '"2"'), "must be a number"),
        (good.replace("processes = 1", "processes = 0"), "processes"),
        (good.replace("busy_mean = 2.0", "busy_mean = -1.0"), "busy_mean"),
        (good.replace("busy_mean = 2.0", "busy_mean = nan"), "busy_mean"),
        (good + "extra = 1\n", "unknown key"),
        (good.replace("db:5432/app", "postgresql://u:secret@db/app"), "password"),
        (good.replace("db:5432/app", "[x](http://evil):1/app"), "host:port/database"),
        (good.replace("db:5432/app", "db:5432/**app**"), "host:port/database"),
        (good.replace("2026-12-06T03:00:00Z", "yesterday"), "UTC time"),
        (good.replace('where = "db:5432/app"\n', ""), "has no where"),
    ]:
        with pytest.raises(ScenarioError, match=words):
            files.parse(base + bad)


def test_measured_load_is_the_offered_load() -> None:
    m = MeasuredLoad(6.0, 10.0, 3, "2026-12-06T03:00:00Z", "db:5432/app", 60)
    load = as_load(m, workers=2, guess=Load(40, 50))
    # per process 6 / 3 = 2 busy: rps / workers x hold = 2, p95 / mean kept for the burst
    assert load.rps / 2 * load.hold_ms / 1000 == pytest.approx(2.0)
    assert load.p95_hold_ms / load.hold_ms == pytest.approx(2.0)  # p95 10 < 2 x mean 6
    bursty = as_load(replace(m, busy_p95=20.0), workers=2)
    assert bursty.p95_hold_ms / bursty.hold_ms == pytest.approx(20 / 6)
    assert bursty.hold_ms == 100.0 and bursty.measured.guess_busy is None
    assert load.measured.guess_busy == pytest.approx(40 / 2 * 0.05)
    with pytest.raises(ScenarioError):
        files.read_measured({"busy_mean": 1.0, "busy_p95": 1.0, "processes": 1,
                              "at": "2026-12-06T03:00:00Z", "where": "a\nb"}, "t")
    from wizard.core.measured import WHERE_SHAPE, where
    assert where("::1", 5432, "my db*") == "[::1]:5432/my_db_"
    assert WHERE_SHAPE.fullmatch(where("::1", 5432, "my db*"))


def test_pgbouncer_admin_console_is_a_second_source(pg: PgServer, pgbouncer_factory,
                                                    tmp_path) -> None:
    """URL database `pgbouncer`: SHOW POOLS (clients active/waiting, servers active) every
    interval and SHOW STATS (transactions/s, average transaction time) over the run."""
    bouncer = pgbouncer_factory("transaction", default_pool_size=24)
    started = threading.Event()

    async def load() -> None:
        await loadgen.open_loop(bouncer.dsn(), "poisson-svc", 60.0, HOLD_MS, 4.5,
                                on_start=started.set)

    thread = threading.Thread(target=lambda: asyncio.run(load()), daemon=True)
    thread.start()
    assert started.wait(20)
    time.sleep(0.2)
    url = f"postgresql://{pg.user}@{bouncer.host}:{bouncer.port}/pgbouncer"  # a stats_user
    d = _observe_json(url, pg)
    thread.join(10)
    pool = next(p for p in d["pools"] if p["database"] == pg.database)
    assert _within(pool["sv_active_mean"], 60.0 * HOLD_MS / 1000, 0.25), pool
    assert _within(pool["xact_per_s"], 60.0, 0.25), pool
    assert pool["avg_xact_ms"] == pytest.approx(HOLD_MS, rel=0.2)
    assert pool["cl_waiting_max"] == 0
    estate = tmp_path / "estate.toml"
    estate.write_text(SCENARIO)
    bad = _cli(["observe", "--url", url, "--seconds", "1", "--scenario", str(estate)],
               {"POOLWISE_LIVE_PASSWORD": pg.password})
    out, err = bad.communicate(timeout=30)
    assert bad.returncode == 2 and "no application_name" in err


def test_app_observes_compares_and_applies_in_one_click(pg: PgServer, isolated_app,
                                                        monkeypatch) -> None:
    """The live step's "Observe for 30 s" (shortened here): the measured busy connections
    beside the plan's assumption, applied with one click."""
    from tests.support import live_app as app
    from tests.support import no_exception, url_of
    from wizard.ui import observe as observe_ui

    # 60 samples: the busy mean of a Poisson load of 5 within 20 % at 3.5 sigma
    monkeypatch.setattr(observe_ui, "SECONDS", 3.0)
    monkeypatch.setattr(observe_ui, "INTERVAL_MS", 50)
    query = {"provider": "aws-rds", "instance_class": "db.r6g.large", "app_instances": "2",
             "workers": "1", "rps": "10", "hold_ms": "50"}
    at = app(query)
    started = threading.Event()

    async def load() -> None:
        await loadgen.open_loop(pg.dsn(), "app", RPS, HOLD_MS, 8.0, on_start=started.set)

    thread = threading.Thread(target=lambda: asyncio.run(load()), daemon=True)
    thread.start()
    assert started.wait(20)
    at.text_input(key="observe_url").input(url_of(pg))
    at.text_input(key="observe_password").input(pg.password)
    next(b for b in at.button if b.label.startswith("Observe for")).click()
    at.run(timeout=60)
    thread.join(10)
    no_exception(at)
    assert at.text_input(key="observe_password").value == ""
    (table,) = [d for d in at.dataframe]
    rows = {r["application_name"]: r for r in table.value.to_dict("records")}
    assert _within(rows["app"]["busy mean"], RPS * HOLD_MS / 1000)
    assert rows["app"]["plan assumed (busy)"] == pytest.approx(2 * 10 * 0.05)
    at.button(key="observe_apply").click().run()
    no_exception(at)
    assert any("Applied the measured load" in str(s.value) for s in at.success)
    at.run()
    assert any("The plan's load is measured" in str(i.value) for i in at.info)
    from wizard.core.plan import recommend
    from wizard.scenario import links
    s = links.from_flat(dict(at.query_params))
    per_process = s.load.rps * s.load.hold_ms / 1000  # 1 worker per instance
    assert _within(per_process * 2, RPS * HOLD_MS / 1000)
    assert recommend(s).services[0].rec.load.offered_load == pytest.approx(per_process)
    # the share link carries the measurement itself, the guess beside it
    assert s.load.measured is not None and s.load.measured.processes == 2
    assert s.load.given == Load(10.0, 50.0)
    assert at.query_params["measured_where"] == f"{pg.host}:{pg.port}/{pg.database}"
    # the results' first screen and the load lines say measured, where and when
    from tests.support import go
    go(at, "results")
    no_exception(at)
    shown = [str(c.value).replace("\\", "") for c in at.caption]  # md_escape'd
    where = f"{pg.host}:{pg.port}/{pg.database}"
    assert any(c.startswith(f"Measured load (poolwise observe, {where}, 20") and
               "The guess (requests/s x hold time) gave 0.50 busy" in c for c in shown), shown


def test_scenario_compare_puts_each_service_beside_its_guess(tmp_path) -> None:
    from wizard.live.observe_cli import compare
    path = tmp_path / "estate.toml"
    path.write_text(SCENARIO)
    acc = obs.Accumulator()
    for _ in range(10):
        acc.add([("poisson-svc", 16, 4, 0, 0), ("stranger", 1, 1, 0, 0)])
    t = target(PgServer("127.0.0.1", 5432, "u", "pw", "db", "a", "apw", "/tmp"))
    lines = compare(obs.result(t, acc, obs.utc_now(), 100), str(path))
    web = next(ln for ln in lines if "poisson-svc" in ln)
    assert "measured 4.00 busy" in web and "the plan assumed 5.00 busy" in web
    assert "not seen" in next(ln for ln in lines if "busy-svc" in ln)


@pytest.mark.parametrize("mode, code", [("many_rows", "oversized"), ("stall", "stalled")])
def test_a_hostile_server_is_cut_off(mode: str, code: str, monkeypatch) -> None:
    """Millions of rows for a sample, or silence after login: one line, within the
    per-sample limit, memory never following the server (tests/fakepg.py)."""
    from tests.fakepg import FakePg
    from wizard.live.errors import LiveError
    from wizard.live.wire import MAX_SERVER_BYTES

    monkeypatch.delenv("POOLWISE_LIVE_ALLOWED_HOSTS", raising=False)

    async def main() -> tuple[LiveError, float, int]:
        async with FakePg(mode, rows=200_000) as fake:
            t = parse_target(f"postgresql://u@127.0.0.1:{fake.port}/d?sslmode=disable", "pw")
            t0 = time.monotonic()
            with pytest.raises(LiveError) as info:
                await obs.observe(t, obs.Accumulator(), seconds=60, interval_ms=100,
                                  connect_timeout=1.0, visitor=False)
            return info.value, time.monotonic() - t0, fake.sent

    err, elapsed, sent = asyncio.run(main())
    assert err.code == code, err
    assert elapsed < 4 and len(err.message) < 300
    assert sent < 16 * MAX_SERVER_BYTES


MEASURED_FLAT = {"s1_measured_busy_mean": "3.5", "s1_measured_busy_p95": "6",
                 "s1_measured_processes": "4", "s1_measured_at": "2026-12-06T03:10:00Z",
                 "s1_measured_where": "db.example.com:5432/app", "s1_measured_seconds": "60"}


def test_a_measurement_survives_links_files_the_store_and_the_form(tmp_path) -> None:
    """Issue 22 follow-up: the measured load is in the parameter table, so a share link,
    a scenario file (as [service.measured]), a saved scenario and the form's state all
    carry it, with the guess beside it; the text says measured, where, when and how far
    the guess was."""
    from wizard.core import measured
    from wizard.core.plan import recommend
    from wizard.scenario import links, store
    from wizard.ui import state

    flat = {"provider": "aws-rds", "instance_class": "db.r6g.large", "s1_name": "api",
            "s1_workers": "2", "s1_rps": "10", "s1_hold_ms": "20", **MEASURED_FLAT,
            "s2_name": "jobs"}
    s = links.from_flat(flat)
    m = s.services[0].load.measured
    assert (m.busy_mean, m.processes, m.where) == (3.5, 4, "db.example.com:5432/app")
    assert s.services[0].load.given == Load(10.0, 20.0)  # the guess stays beside it
    assert s.services[1].load is None
    # link
    assert links.to_flat(s) == flat and links.from_flat(links.to_flat(s)) == s
    assert "s1_measured_where=db.example.com%3A5432%2Fapp" in links.to_query(s)
    # file: [service.measured], the guess in the [[service]] table
    text = files.dump(s)
    assert "[service.measured]\nbusy_mean = 3.5\n" in text and "measured_" not in text
    assert files.parse(text) == s
    # the saved store
    saved = store.ScenarioStore(f"sqlite:///{tmp_path / 'saved.db'}")
    try:
        saved.save("measured", links.to_flat(s))
        assert links.from_flat(saved.load("measured")) == s
    finally:
        saved.close()
    # the form's state (no widget: kept in the state, written back to the link)
    values, notes, refused = state.link_values(flat)
    assert not notes and not refused and values["s1_measured_busy_mean"] == 3.5
    assert state.flat_from_values(values) == flat
    # the one-fleet form too, with the measurement alone (no guess: the load toggle off)
    one = {"provider": "aws-rds", "instance_class": "db.r6g.large",
           **{k.removeprefix("s1_"): v for k, v in MEASURED_FLAT.items()}}
    values, notes, refused = state.link_values(one)
    assert not notes and not refused and values["load_on"] is False
    assert state.flat_from_values(values) == one
    assert links.from_flat(one).load.given is None
    # every surface: the load lines (CLI text, report, app details) and the first screen
    rec = recommend(s)
    words = measured.answer_lines(rec)
    assert len(words) == 1 and words[0].startswith("api: Measured load (poolwise observe, "
                                                   "db.example.com:5432/app, 2026-12-06T03")
    assert "The guess (requests/s x hold time) gave 0.10 busy" in words[0]
    assert "0.11x the measurement" in words[0]
    from wizard.cli import recommendation_json, render_text
    from wizard.export import render_report
    said = "Measured load (poolwise observe, db.example.com:5432/app, 2026-12-06T03:10:00Z, 60 s)"
    assert said in render_text(rec)  # the CLI's text
    assert said in render_report(rec, generated_on="2026-12-06")  # the report
    load = json.loads(json.dumps(recommendation_json(rec)))["services"][0]["load"]
    assert load["source"] == "measured" and load["measured"]["where"] == m.where
    assert load["measured"]["guess"]["rps"] == 10.0  # the JSON keeps the guess beside it
    # a measurement is whole: a part alone is refused, naming the key
    with pytest.raises(ScenarioError, match="measured_at") as exc:
        links.from_flat({k: v for k, v in flat.items() if k != "s1_measured_at"})
    assert exc.value.key == "s1_measured_at"
    for key, bad in [("s1_measured_where", "u:pw@db:5432/app"),
                     ("s1_measured_where", "[x](http://evil):1/a"),
                     ("s1_measured_at", "yesterday"), ("s1_measured_busy_mean", "-1"),
                     ("s1_measured_processes", "0")]:
        with pytest.raises(ScenarioError) as exc:
            links.from_flat({**flat, key: bad})
        assert exc.value.key == key, (key, bad)


def test_an_error_in_service_measured_points_at_its_table() -> None:
    text = ('provider = "aws-rds"\n\n[[service]]\nname = "api"\nrps = 10\nhold_ms = 20\n\n'
            '[service.measured]  # poolwise observe\nbusy_mean = 2.0\nbusy_p95 = -3\n'
            'processes = 1\nat = "2026-12-06T03:00:00Z"\nwhere = "db:5432/app"\n')
    with pytest.raises(files.ScenarioFileError) as exc:
        files.parse(text, "estate.toml")
    assert exc.value.line == 8 and str(exc.value).startswith("estate.toml:8: ")
    assert "busy_p95" in str(exc.value)
    with pytest.raises(files.ScenarioFileError) as exc:  # both forms at once: keep one
        files.parse(text.replace("hold_ms = 20\n", "hold_ms = 20\nmeasured_busy_mean = 1\n")
                    .replace("busy_p95 = -3", "busy_p95 = 3"), "estate.toml")
    assert "keep one" in str(exc.value) and exc.value.line == 9


def test_the_admin_console_reader_is_bounded_in_bytes(monkeypatch) -> None:
    """libpq buffers a whole answer: the reader's relay cuts a console that sends more than
    MAX_ANSWER_BYTES for one answer (2,000,000 rows, ~90 MB, here), one line, the bytes
    sent bounded (tests/fakepg.py). Without the relay, all of it lands in memory."""
    from tests.fakepg import FakePg
    from wizard.live import observe_pgbouncer as pgb
    from wizard.live.errors import LiveError

    monkeypatch.delenv("POOLWISE_LIVE_ALLOWED_HOSTS", raising=False)

    async def main() -> tuple[LiveError, float, int]:
        async with FakePg("rows", rows=2_000_000) as fake:
            t = parse_target(f"postgresql://u@127.0.0.1:{fake.port}/pgbouncer"
                             "?sslmode=disable", "pw")
            t0 = time.monotonic()
            with pytest.raises(LiveError) as info:
                await pgb.observe_pgbouncer(t, pgb.PoolAccumulator(), seconds=5,
                                            interval_ms=100, connect_timeout=5.0)
            return info.value, time.monotonic() - t0, fake.sent

    err, elapsed, sent = asyncio.run(main())
    assert err.code == "oversized" and "KiB for one answer" in err.message, err
    assert "\n" not in err.message and len(err.message) < 300
    assert elapsed < 10
    assert sent < 8 * pgb.MAX_ANSWER_BYTES, sent


def test_the_app_says_a_linked_measurement_sizes_and_can_forget_it() -> None:
    """A link with a measurement opens with it (the Load step and each service say so, the
    results too); "Forget the measured load" drops it and the guess sizes again; turning
    the one fleet into services keeps it on the first service."""
    from tests.support import go, new_app, no_exception

    one = {"provider": "aws-rds", "instance_class": "db.r6g.large", "rps": "10",
           "hold_ms": "20", **{k.removeprefix("s1_"): v for k, v in MEASURED_FLAT.items()}}
    at = go(new_app(one), "load")
    no_exception(at)
    note = [str(i.value).replace("\\", "") for i in at.info]
    assert any(n.startswith("Load measured: 3.5 busy connections (p95 6) over 4 processes "
                            "(poolwise observe, db.example.com:5432/app, 2026-12-06T03:10:00Z)")
               for n in note), note
    assert at.query_params["measured_busy_mean"] == "3.5"
    go(at, "results")
    shown = [str(c.value).replace("\\", "") for c in at.caption]
    assert any("Measured load (poolwise observe, db.example.com" in c for c in shown), shown
    # the metric cards name the service with its load's source
    assert "app (web; load measured (db.example.com:5432/app, 2026-12-06T03:10:00Z))" in shown
    # several services: the fleet becomes service 1, its measurement with it
    go(at, "topology")
    at.button(key="services_on").click().run()
    no_exception(at)
    assert at.query_params["s1_measured_busy_mean"] == "3.5"
    assert at.query_params["s1_measured_where"] == "db.example.com:5432/app"
    assert "measured_busy_mean" not in at.query_params
    shown = [str(c.value).replace("\\", "") for c in at.caption]
    assert any("load measured: 3.5 busy connections" in c for c in shown), shown


def test_forget_the_measured_load_drops_it() -> None:
    from tests.support import go, new_app, no_exception

    one = {"provider": "aws-rds", "instance_class": "db.r6g.large", "rps": "10",
           "hold_ms": "20", **{k.removeprefix("s1_"): v for k, v in MEASURED_FLAT.items()}}
    at = go(new_app(one), "load")
    at.button(key="forget_measured_").click().run()
    no_exception(at)
    assert not any("measured" in k for k in at.query_params), dict(at.query_params)
    assert at.query_params["rps"] == "10"  # the guess sizes again
    assert not any("Load measured" in str(i.value) for i in at.info)


def test_write_replaces_a_measurement_kept_as_flat_keys(tmp_path) -> None:
    """A [[service]] table with the measured_* keys (files.dump's one-fleet form, a link's)
    gets the new measurement as [service.measured], the old keys gone, comments kept."""
    from wizard.scenario import record

    path = tmp_path / "estate.toml"
    path.write_text('provider = "aws-rds"\n\n[[service]]\nname = "api"  # the API\n'
                    'rps = 10\nhold_ms = 20\nmeasured_busy_mean = 1.0\nmeasured_busy_p95 = 2\n'
                    'measured_processes = 2\nmeasured_at = "2026-12-06T03:00:00Z"\n'
                    'measured_where = "db:5432/app"\n')
    record.write(path, {"api": (3.0, 5.0)}, at="2026-12-06T04:00:00Z", where="db:5432/app",
                 seconds=30)
    text = path.read_text()
    assert "measured_" not in text and 'name = "api"  # the API' in text
    m = files.load(path).services[0].load.measured
    assert (m.busy_mean, m.at, m.guess) == (3.0, "2026-12-06T04:00:00Z", Load(10.0, 20.0))
