"""`poolwise check` (issue 14, Guard): a scenario file's current pools at everyone's autoscaling
peak against each endpoint's usable connections.

Expected sums are derived here from the file's own numbers (instances at the autoscaling
maximum plus the deploy surge, rounded up as Kubernetes does, x workers x pool_size +
max_overflow), never read back from the code. The annotation format is checked against
GitHub's documented workflow-command syntax (`::error file=F,line=N,title=T::M`,
https://docs.github.com/en/actions/reference/workflows-and-actions/workflow-commands) with
the escaping of actions/toolkit's packages/core/src/command.ts (message: % \\r \\n; properties
also : and ,).
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.installed import ROOT, Installed
from wizard import cli, guard
from wizard.core import current, plan
from wizard.scenario import files

# self-hosted with every reserve given: usable = 1000 - (3 + 5 + 2 + 0) = 990.
DATABASE = """\
# The estate behind deploy/: api mirrors k8s/api-hpa.yaml, jobs k8s/jobs.yaml.
provider = "self-hosted"
max_connections = 1000
superuser_reserved = 3
admin_reserve = 5
migrations_reserve = 2
replication_reserve = 0
"""
USABLE = 1000 - (3 + 5 + 2 + 0)


def service(name: str, *, instances: int, top: int | None = None, surge: int = 25,
            workers: int = 1, pool: int | None = None, overflow: int | None = None,
            extra: str = "") -> str:
    lines = ["", "[[service]]", f'name = "{name}"', f"app_instances = {instances}"]
    if top is not None:
        lines.append(f"max_app_instances = {top}")
    lines += [f"deploy_surge_percent = {surge}", f"workers = {workers}"]
    if pool is not None:
        lines.append(f"current_pool_size = {pool}")
    if overflow is not None:
        lines.append(f"current_max_overflow = {overflow}")
    return "\n".join(lines) + "\n" + extra


def engines(instances: int, top: int | None, surge: int, workers: int) -> int:
    """Processes at the peak: the autoscaling maximum plus maxSurge rounded up, x workers."""
    peak = top or instances
    return (peak + math.ceil(peak * surge / 100)) * workers


def key_line(text: str, key: str, table: int | None = None) -> int:
    """The 1-based line of `key` in the table-th [[service]] table (None: before any)."""
    seen = 0
    for no, line in enumerate(text.splitlines(), start=1):
        if line.strip() == "[[service]]":
            seen += 1
        elif line.split("=")[0].strip() == key and seen == (table or 0):
            return no
    raise AssertionError(f"{key} not in table {table}")


API = dict(instances=4, top=10, surge=20, workers=4, pool=5, overflow=10)
JOBS = dict(instances=3, top=None, surge=0, workers=2, pool=3, overflow=2)
PASSING = DATABASE + service("api", **API) + service("jobs", **JOBS)


def per(d: dict) -> int:
    return d["pool"] + d["overflow"]


def seen(d: dict) -> int:
    return engines(d["instances"], d["top"], d["surge"], d["workers"]) * per(d)


def run(tmp_path: Path, text: str, *args: str, capsys) -> tuple[int, str, str]:
    path = tmp_path / "poolwise.toml"
    path.write_text(text)
    code = cli.main(["check", "--scenario", str(path), *args])
    out = capsys.readouterr()
    return code, out.out, out.err


# --- the numbers ------------------------------------------------------------------------

def test_passing_estate_reports_each_endpoints_headroom(tmp_path, capsys) -> None:
    code, out, err = run(tmp_path, PASSING, "--json", capsys=capsys)
    assert code == 0, out + err
    got = json.loads(out)
    assert got["ok"] is True and got["exit_code"] == 0 and got["failures"] == []
    (primary,) = got["endpoints"]
    total = seen(API) + seen(JOBS)  # 48 x 15 + 6 x 5 = 750
    assert primary["usable"] == USABLE
    assert primary["connections"] == total
    assert primary["headroom"] == USABLE - total
    assert {s["service"]: s["connections"] for s in primary["services"]} == {
        "api": seen(API), "jobs": seen(JOBS)}
    assert all(s["counted"] == "today" for s in primary["services"])
    code, text, _ = run(tmp_path, PASSING, capsys=capsys)
    assert code == 0
    assert f"primary: {total:,} of {USABLE:,} usable connections at the peak; headroom " \
           f"{USABLE - total:,}" in text


def test_raising_an_autoscaling_maximum_fails_naming_service_endpoint_and_fix(
        tmp_path, capsys) -> None:
    api = {**API, "top": 20}
    text = DATABASE + service("api", **api) + service("jobs", **JOBS)
    total = seen(api) + seen(JOBS)  # (20 + 4) x 4 x 15 + 30 = 1,470
    assert total > USABLE
    code, out, _ = run(tmp_path, text, "--json", capsys=capsys)
    assert code == 1
    got = json.loads(out)
    assert got["ok"] is False and got["endpoints"][0]["connections"] == total
    assert got["endpoints"][0]["headroom"] == USABLE - total
    over = [f for f in got["failures"] if f["code"] == "SERVICES_OVER_USABLE"]
    assert len(over) == 1
    (f,) = over
    assert f["services"] == ["api"] and f["endpoint"] == "primary"
    assert f"= {total:,} connections, above the {USABLE:,} usable" in f["message"]
    # The fix is api's recommended pool, the one `export --service api` writes.
    eng = plan.recommend(files.parse(text)).service("api").rec.engine("primary")
    assert f"api's recommended pool_size={eng.pool_size}, max_overflow={eng.max_overflow}" in (
        f["fix"])
    assert f["lines"] == [key_line(text, "current_pool_size", 1)]
    code, plain, _ = run(tmp_path, text, capsys=capsys)
    assert code == 1 and "FAILED" in plain
    assert re.search(r"^error: api \(line \d+\): SERVICES_OVER_USABLE: primary: ", plain, re.M)
    assert f"over by {total - USABLE:,}" in plain


def test_a_service_without_current_settings_counts_at_its_recommended_pool(tmp_path,
                                                                             capsys) -> None:
    text = DATABASE + service("api", **API) + service("jobs", **{**JOBS, "pool": None,
                                                                  "overflow": None})
    code, out, _ = run(tmp_path, text, "--json", capsys=capsys)
    got = json.loads(out)
    jobs = next(s for s in got["endpoints"][0]["services"] if s["service"] == "jobs")
    assert jobs["counted"] == "recommended"
    rec = plan.recommend(files.parse(text))
    share = next(b for b in rec.endpoint("primary").by_service if b.service == "jobs")
    n = engines(JOBS["instances"], JOBS["top"], JOBS["surge"], JOBS["workers"])
    assert jobs["engines"] == n
    assert jobs["connections"] == n * (share.pool_size + share.max_overflow)
    assert got["endpoints"][0]["connections"] == seen(API) + jobs["connections"]
    assert code == (0 if seen(API) + jobs["connections"] <= USABLE else 1)
    _, plain, _ = run(tmp_path, text, capsys=capsys)
    assert "it declares no current pool_size, so its recommended pool counts" in plain


def test_flags_form_file_is_one_service(tmp_path, capsys) -> None:
    text = DATABASE + "app_instances = 6\nmax_app_instances = 30\nworkers = 3\n" \
        "current_pool_size = 10\ncurrent_max_overflow = 5\n"
    n = engines(6, 30, 25, 3)  # deploy surge 25 % by default: (30 + 8) x 3 = 114
    code, out, _ = run(tmp_path, text, "--json", capsys=capsys)
    got = json.loads(out)
    (primary,) = got["endpoints"]
    assert [s["service"] for s in primary["services"]] == ["app"]
    assert primary["connections"] == n * 15 and n * 15 > USABLE and code == 1
    (f,) = [f for f in got["failures"] if f["code"] == "WORST_CASE_OVER_MAX"]
    assert f["services"] == ["app"] and f["endpoint"] == "primary"
    assert f["lines"] == [key_line(text, "current_pool_size")]
    assert "pool_size=" in f["fix"] and "max_overflow=" in f["fix"]


def test_services_behind_one_pgbouncer_each_reach_their_own_pool(tmp_path, capsys) -> None:
    """Two services behind one PgBouncer: one URL is one user/database pair, so each
    service's engines reach one pool of default_pool_size, and the pools add up."""
    text = (DATABASE + 'proxy = "pgbouncer-transaction"\npgbouncer_pool_size = 80\n'
            + service("api", **API) + service("web", **{**API, "top": 6})
            + service("jobs", **JOBS, extra='proxy = "none"\n'))
    code, out, _ = run(tmp_path, text, "--json", capsys=capsys)
    got = json.loads(out)
    (primary,) = got["endpoints"]
    rows = {s["service"]: s for s in primary["services"]}
    assert rows["api"]["pooler"] == rows["web"]["pooler"] == "pgbouncer-transaction"
    for name in ("api", "web"):
        assert rows[name]["connections"] == min(80, rows[name]["client_connections"])
    pools = rows["api"]["connections"] + rows["web"]["connections"]
    assert pools > 80  # not one pool shared by both
    assert rows["jobs"]["connections"] == seen(JOBS) and rows["jobs"]["pooler"] is None
    assert primary["connections"] == pools + seen(JOBS)
    assert rows["api"]["client_connections"] == seen(API)
    assert code == 0, got["failures"]


def test_current_pools_over_a_poolers_client_limit_fail(tmp_path, capsys) -> None:
    """PgBouncer refuses clients beyond max_client_conn: alone or added up, that fails."""
    pooler = 'proxy = "pgbouncer-transaction"\npgbouncer_pool_size = 80\n'
    alone = DATABASE + pooler + "pgbouncer_max_client_conn = 1200\n" + (
        "app_instances = 4\nmax_app_instances = 20\nworkers = 4\n"
        "current_pool_size = 5\ncurrent_max_overflow = 10\n")
    asked = engines(4, 20, 25, 4) * 15  # 100 engines x 15 = 1,500
    code, out, _ = run(tmp_path, alone, "--json", capsys=capsys)
    got = json.loads(out)
    assert code == 1 and not got["endpoints"][0]["over"]  # the database itself is safe
    (f,) = [f for f in got["failures"] if f["code"] == "CURRENT_OVER_CLIENT_LIMIT"]
    assert f"{asked:,} client connections" in f["message"] and "1,200" in f["message"]
    web = {**API, "top": 6}
    both = (DATABASE + pooler + "pgbouncer_max_client_conn = 1000\n"
            + service("api", **API) + service("web", **web))
    assert seen(API) <= 1000 and seen(web) <= 1000 < seen(API) + seen(web)
    code, out, _ = run(tmp_path, both, "--json", capsys=capsys)
    got = json.loads(out)
    (f,) = [f for f in got["failures"] if f["code"] == "SERVICES_OVER_CLIENT_LIMIT"]
    assert code == 1 and sorted(f["services"]) == ["api", "web"]
    assert f"= {seen(API) + seen(web):,} client connections" in f["message"]


def test_without_current_settings_the_check_sees_the_recommended_estate() -> None:
    """One answer: with no current_* anywhere the check's totals are recommend's."""
    text = (DATABASE + 'proxy = "pgbouncer-transaction"\npgbouncer_pool_size = 50\n'
            + service("api", instances=5, top=12, workers=3)
            + service("web", instances=2, top=9, workers=2)
            + service("cron", instances=1, workers=1, extra='kind = "cron"\nproxy = "none"\n'))
    rec = plan.recommend(files.parse(text))
    uses = current.current_use(rec)
    for use, ep in zip(uses, rec.endpoints, strict=True):
        assert use.total == ep.worst_case
        assert [u.connections for u in use.services] == [b.worst_case for b in ep.by_service]
        assert not use.declared
    assert guard.check(text, "f.toml").ok


def test_unbounded_overflow_fails(tmp_path, capsys) -> None:
    text = DATABASE + service("api", **{**API, "overflow": -1}) + service("jobs", **JOBS)
    code, out, _ = run(tmp_path, text, "--json", capsys=capsys)
    got = json.loads(out)
    assert code == 1
    assert got["endpoints"][0]["connections"] is None and got["endpoints"][0]["over"]
    found = [f for f in got["failures"] if f["code"] == "UNBOUNDED_OVERFLOW"]
    assert found  # the service's own finding and the plan's
    for f in found:
        assert f["services"] == ["api"]
        assert f["lines"] == [key_line(text, "current_max_overflow", 1)]


def test_the_check_and_recommend_agree_on_the_sum() -> None:
    api = {**API, "top": 20}
    text = DATABASE + service("api", **api) + service("jobs", **JOBS)
    rec = plan.recommend(files.parse(text))
    report = guard.check(text, "f.toml")
    (use,) = report.endpoints
    (found,) = [w for w in rec.warnings if w.code == "SERVICES_OVER_USABLE"]
    assert f"= {use.total:,} connections" in found.message
    errors = {(w.code, w.fix) for w in rec.warnings if w.severity == "error"}
    assert {(p.code, p.fix) for p in report.failures} == errors


def test_an_estate_that_cannot_fit_at_all_fails_not_crashes(tmp_path, capsys) -> None:
    text = DATABASE + service("api", instances=10, top=2000, workers=4, pool=1, overflow=0)
    code, out, err = run(tmp_path, text, capsys=capsys)
    assert code == 1, err
    assert "CANNOT_FIT" in out and "primary" in out and "fix:" in out


def test_a_load_the_pools_cannot_carry_is_an_error_finding(tmp_path, capsys) -> None:
    """An error-severity finding fails the check even when the endpoint fits."""
    text = DATABASE + ("app_instances = 4\nmax_app_instances = 10\nworkers = 4\n"
                       "rps = 400\nhold_ms = 200\n")
    code, out, _ = run(tmp_path, text, "--json", capsys=capsys)
    got = json.loads(out)
    assert not got["endpoints"][0]["over"]
    (f,) = [f for f in got["failures"] if f["code"] == "LOAD_OVER_BUDGET"]
    assert code == 1 and f["services"] == ["app"]
    # 400 req/s per instance over 4 workers, each request holding 200 ms: 100 x 0.2 = 20.
    assert "offers a load of 20.0 busy connections" in f["message"]
    assert f["lines"] == [key_line(text, "rps")]


def test_the_readmes_example_file_checks() -> None:
    readme = (ROOT / "README.md").read_text()
    part = readme[readme.index("## Budget as code"):]
    text = part[part.index("```toml\n") + 8:part.index("\n```", part.index("```toml"))] + "\n"
    report = guard.check(text, "deploy/poolwise.toml")
    assert report.ok and [u.service for u in report.endpoints[0].services] == ["api", "jobs"]
    # api: maxReplicas 12 + 25 % surge (3) = 15 pods x 4 workers x (5 + 10).
    assert report.endpoints[0].services[0].connections == engines(4, 12, 25, 4) * 15


# --- bad files --------------------------------------------------------------------------

@pytest.mark.parametrize("text, line, words", [
    (PASSING.replace("workers = 4", "workers = four"), None, "not valid TOML"),
    (PASSING.replace("workers = 4", 'workers = "many"'), None, "whole number"),
    (PASSING.replace('name = "jobs"', 'name = "jobs"\nendpoints = ["primary", "replica-3"]'),
     None, "replica-3"),
])
def test_bad_files_exit_2_with_file_and_line(tmp_path, capsys, text, line, words) -> None:
    bad_line = next(no for no, t in enumerate(text.splitlines(), start=1)
                    if "four" in t or "many" in t or "replica-3" in t)
    code, out, err = run(tmp_path, text, capsys=capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"error: {tmp_path / 'poolwise.toml'}:{bad_line}: ") and words in err
    assert err.count("\n") == 1
    code, out, _ = run(tmp_path, text, "--format", "github", capsys=capsys)
    assert code == 2
    (ann,) = out.splitlines()
    assert f",line={bad_line},title=" in ann and ann.startswith("::error file=")
    code, out, _ = run(tmp_path, text, "--json", capsys=capsys)
    assert code == 2 and json.loads(out)["error"]["line"] == bad_line


def test_a_missing_file_exits_2(tmp_path, capsys) -> None:
    code = cli.main(["check", "--scenario", str(tmp_path / "nope.toml")])
    err = capsys.readouterr().err
    assert code == 2 and "no such file" in err


# --- GitHub's annotation format -----------------------------------------------------------

# Documented: ::error file={name},line={line},title={title}::{message}. Escaped, a property
# holds no raw , : \r \n and a message no raw \r \n; every % starts an escape.
PROPERTY = r"(?:[^,:%\r\n]|%25|%0D|%0A|%3A|%2C)+"
ANNOTATION = re.compile(rf"::(error|warning) file=({PROPERTY}),line=([1-9]\d*),"
                        rf"title=({PROPERTY})::((?:[^%\r\n]|%25|%0D|%0A)*)")


def unescape(value: str) -> str:
    return re.sub(r"%(25|0D|0A|3A|2C)", lambda m: bytes.fromhex(m.group(1)).decode(), value)


def test_escaping_follows_the_toolkit() -> None:
    assert guard.escape_data("50% of a\r\nb: c, d") == "50%25 of a%0D%0Ab: c, d"
    assert guard.escape_property("50% of a\r\nb: c, d") == "50%25 of a%0D%0Ab%3A c%2C d"
    raw = "50%25 done"  # already looks escaped: must survive a round trip
    assert unescape(guard.escape_data(raw)) == raw


def test_github_annotations_point_at_the_offending_lines(tmp_path) -> None:
    api = {**API, "top": 20}
    text = DATABASE + service("api", **api) + service("jobs", **JOBS)
    path = "deploy/we,ird: 100%.toml"  # every character a property must escape
    report = guard.check(text, path)
    lines = guard.render_github(report).splitlines()
    anns = [ANNOTATION.fullmatch(ln) for ln in lines if ln.startswith("::")]
    assert anns and all(anns), [ln for ln in lines if ln.startswith("::")]
    errors = [m for m in anns if m.group(1) == "error"]
    assert len(errors) >= 1
    for m in errors:
        assert unescape(m.group(2)) == path
        assert int(m.group(3)) == key_line(text, "current_pool_size", 1)
        title, message = unescape(m.group(4)), unescape(m.group(5))
        assert "api" in title and "primary" in title
        assert message.startswith("api: primary: ") and " Fix: " in message
    # The text part carries no stray workflow command.
    assert all(ln.startswith("::") == bool(ANNOTATION.fullmatch(ln)) for ln in lines)


def test_github_annotation_of_a_message_with_newlines() -> None:
    line = guard.annotation("error", "a.toml", 3, "t", "first\nsecond 5%")
    m = ANNOTATION.fullmatch(line)
    assert m and unescape(m.group(5)) == "first\nsecond 5%"


# --- the installed command ------------------------------------------------------------------

def _write(installed: Installed, name: str, text: str) -> str:
    path = installed.outside / "deploy" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return f"deploy/{name}"


@pytest.mark.slow
def test_installed_check_passes_fails_and_refuses(installed: Installed) -> None:
    ok = _write(installed, "ok.toml", PASSING)
    out = installed.run("check", "--scenario", ok)
    assert out.returncode == 0, out.stdout + out.stderr
    total = seen(API) + seen(JOBS)
    assert f"headroom {USABLE - total:,}" in out.stdout
    ref = subprocess.run([sys.executable, "-m", "wizard", "check", "--scenario",
                          str(installed.outside / ok), "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    mine = installed.run("check", "--scenario", ok, "--json")
    assert json.loads(mine.stdout)["endpoints"] == json.loads(ref.stdout)["endpoints"]

    failing = DATABASE + service("api", **{**API, "top": 20}) + service("jobs", **JOBS)
    bad = _write(installed, "over.toml", failing)
    out = installed.run("check", "--scenario", bad, "--format", "github")
    assert out.returncode == 1, out.stderr
    anns = [ANNOTATION.fullmatch(ln) for ln in out.stdout.splitlines() if ln.startswith("::")]
    assert anns and all(anns)
    at = key_line(failing, "current_pool_size", 1)
    assert any(m.group(1) == "error" and unescape(m.group(2)) == bad and int(m.group(3)) == at
               and "SERVICES_OVER_USABLE" in unescape(m.group(4)) for m in anns)

    broken = _write(installed, "broken.toml", PASSING.replace("workers = 4", "workers = ["))
    out = installed.run("check", "--scenario", broken)
    assert out.returncode == 2
    assert re.fullmatch(rf"error: {re.escape(broken)}:\d+: not valid TOML.*\n", out.stderr)


def test_max_overflow_without_pool_size_counts_sqlalchemys_default_five(tmp_path,
                                                                       capsys) -> None:
    """create_async_engine(max_overflow=190) keeps pool_size 5: 195 per engine."""
    text = ('provider = "self-hosted"\nmax_connections = 100\nsuperuser_reserved = 3\n'
            "admin_reserve = 3\nmigrations_reserve = 1\n"
            + service("api", instances=1, surge=0, overflow=190))
    code, out, _ = run(tmp_path, text, "--json", capsys=capsys)
    got = json.loads(out)
    (primary,) = got["endpoints"]
    assert primary["usable"] == 93
    assert primary["connections"] == 5 + 190
    assert primary["services"][0]["counted"] == "today"
    assert code == 1


def test_a_declared_statement_cache_off_silences_the_prepared_statement_warning(
        tmp_path, capsys) -> None:
    """The check cannot see statement_cache_size; a service that declares it 0 is compliant."""
    pooler = 'proxy = "pgbouncer-transaction"\npgbouncer_version = "1.18"\n'
    base = DATABASE + pooler + service("api", **API)
    for extra, warned in (("", True), ("current_statement_cache_size = 0\n", False)):
        code, out, _ = run(tmp_path, base + extra, "--json", capsys=capsys)
        got = json.loads(out)
        codes = {p["code"] for p in got["failures"] + got.get("warnings", [])}
        assert ("PREPARED_STATEMENTS_TXN_POOLER" in codes) is warned, got


# --- issue 21: hostile files and the CI log --------------------------------------------

NOTICE = re.compile(rf"::notice file=({PROPERTY}),title=({PROPERTY})::((?:[^%\r\n]|%25|%0D|%0A)*)")


def assert_no_stray_command(text: str) -> None:
    """Every line is an escaped annotation, or plain text the runner cannot read as a
    workflow command (`::cmd` after leading space, or the older `##[cmd]` anywhere)."""
    for ln in re.split(r"\r\n|\r|\n", text):
        if ANNOTATION.fullmatch(ln) or NOTICE.fullmatch(ln):
            continue
        assert not ln.lstrip().startswith("::") and "##[" not in ln, repr(ln)


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a TOML basic string: JSON's escapes are TOML's


HOSTILE_VALUE = "db.r6g.large\n::add-mask::hunter2\n::error file=x,line=1::forged\r##[error]old"


@pytest.mark.parametrize("text", [
    # a file value holding line breaks and commands, in each kind of file
    'provider = "aws-rds"\ninstance_class = "db.r6g.large"\nreplicas = 1\n'
    f"replica_instance_class = [{_toml_string(HOSTILE_VALUE)}]\n",
    PASSING.replace('name = "jobs"', f'name = "jobs"\nkind = {_toml_string(HOSTILE_VALUE)}'),
    PASSING.replace("provider = \"self-hosted\"", f"provider = {_toml_string(HOSTILE_VALUE)}"),
    PASSING.replace("workers = 4", f"{_toml_string(HOSTILE_VALUE)} = 4"),
    DATABASE + service("api", **{**API, "top": 20}) + service("jobs", **JOBS),  # fails
    PASSING,
])
@pytest.mark.parametrize("name", ["poolwise.toml", "deploy\n::error::forged\n##[error]x.toml"])
def test_github_mode_never_prints_a_workflow_command_of_the_files(tmp_path, capsys, text,
                                                                   name) -> None:
    path = tmp_path / name
    path.write_text(text)
    code = cli.main(["check", "--scenario", str(path), "--format", "github"])
    out = capsys.readouterr()
    assert code in (0, 1, 2)
    assert_no_stray_command(out.out)
    assert_no_stray_command(out.err)
    if code == 2:
        assert out.err.count("\n") == 1


def _many_services_over(n: int) -> str:
    text = DATABASE
    for i in range(n):
        text += service(f"svc{i}", instances=2, top=4, surge=0, workers=4, pool=20,
                        overflow=10)
    return text


def test_github_mode_shows_ten_errors_then_says_how_many_more(tmp_path, capsys) -> None:
    code, out, _ = run(tmp_path, _many_services_over(14), "--format", "github", capsys=capsys)
    assert code == 1
    errors = [ln for ln in out.splitlines() if ln.startswith("::error ")]
    notices = [NOTICE.fullmatch(ln) for ln in out.splitlines()
               if ln.startswith("::notice ") and "more errors" in ln]
    report = guard.check(_many_services_over(14), "x.toml")
    total = sum(len(set(p.lines)) for p in report.failures)
    assert total > 10 and len(errors) == 10
    assert len(notices) == 1 and notices[0]
    assert f"{total - 10} more error annotations" in unescape(notices[0].group(3))
    assert_no_stray_command(out)


def test_a_closed_pipe_ends_quietly(tmp_path) -> None:
    path = tmp_path / "estate.toml"
    path.write_text(_many_services_over(14))
    proc = subprocess.Popen([sys.executable, "-m", "wizard", "check", "--scenario", str(path),
                             "--format", "github"], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    proc.stdout.close()  # `| head -0`: the reader is gone before anything is written
    err = proc.stderr.read().decode()
    proc.wait(timeout=60)
    assert "Traceback" not in err and "Exception ignored" not in err and "Error" not in err
    assert err == ""
    assert proc.returncode == cli.EXIT_CLOSED_PIPE


@pytest.mark.parametrize("kind", ["dev-zero", "fifo", "directory", "dev-null-link"])
def test_only_regular_files_are_read(tmp_path, capsys, kind) -> None:
    import os
    path = tmp_path / "estate.toml"
    if kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "dev-null-link":
        path.symlink_to("/dev/null")
    elif kind == "fifo":
        os.mkfifo(path)  # no writer: opening it for reading would block
    else:
        path.mkdir()
    code = cli.main(["check", "--scenario", str(path)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "regular file" in err, err
    with pytest.raises(files.ScenarioFileError, match="regular file"):
        files.load(path)


@pytest.mark.parametrize("text, words", [
    ("workers = " + "[" * 3000 + "]" * 3000 + "\n", "nested too deeply"),
    ('provider = "self-hosted"\nmax_connections = ' + "9" * 5000 + "\n", "4,300 digits"),
    ('provider = "self-hosted"\nmax_connections = ' + "9" * 4000 + "\n", "at most 32 digits"),
    ("a = " + "{b = " * 3000 + "1" + "}" * 3000 + "\n", "nested too deeply"),
])
def test_absurd_toml_is_a_bad_file_in_one_line(tmp_path, capsys, text, words) -> None:
    code, out, err = run(tmp_path, text, capsys=capsys)
    assert code == 2 and err.count("\n") == 1 and words in err, err
    assert "Traceback" not in err


@pytest.mark.parametrize("old, new, key", [
    ('name = "api"', 'name = ["api"]', "name"),
    ("workers = 4", "workers = [4]", "workers"),
    ("app_instances = 4", "app_instances = true", "app_instances"),
    ('name = "jobs"', 'name = "jobs"\nendpoints = "primary"', "endpoints"),
    ('max_connections = 1000', 'max_connections = 1000.0', "max_connections"),
    ('provider = "self-hosted"', "provider = 7", "provider"),
])
def test_values_of_the_wrong_type_are_refused_not_coerced(tmp_path, capsys, old, new,
                                                          key) -> None:
    text = PASSING.replace(old, new, 1)
    assert text != PASSING
    line = next(no for no, t in enumerate(text.splitlines(), start=1)
                if t.startswith(new.splitlines()[-1]))
    code, out, err = run(tmp_path, text, capsys=capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"poolwise.toml:{line}: '{key}' must be" in err


def test_the_check_reads_findings_fields_never_their_messages():
    # Issue 19: no `.single` switch, no prefix parsing of a Finding's message, no own code map.
    src = Path(guard.__file__).read_text()
    assert ".single" not in src and "f.message.startswith" not in src
    assert "PLAN_JUDGED" not in src and "FINDING_KEYS" not in src
