"""What every export says of its scenario: the fleet in words, the share link, the CLI
line's name for a scenario file, which service an export is named after, and the refusal of
anything that looks like a credential."""

from __future__ import annotations

from wizard.core.model import (
    Recommendation,
    Scenario,
    ScenarioError,
    ServiceResult,
)
from wizard.scenario import links
from wizard.scenario.redact import credential_params

SELF_MANAGED_PGBOUNCER = ("pgbouncer-transaction", "pgbouncer-session")
SCENARIO_FILE = "poolwise-scenario.toml"  # the name the app's Export step downloads it as


def fleet_text(rec: Recommendation) -> str:
    s = rec.sized
    p = rec.endpoint("primary")
    if s.serverless:
        return (f"{s.serverless_concurrency:,} concurrent invocations (serverless), one NullPool "
                f"engine each = {p.clients:,} engines on the primary")
    top = s.autoscaling_max
    return (f"{s.peak_instances} instances at peak ({top} + {s.deploy_surge_percent}% deploy "
            f"surge) x {s.workers} workers x {s.engines_per_process} engine(s) = "
            f"{p.clients:,} engines on the primary")


def app_link(s, share_base: str | None) -> list[str]:
    """The scenario's link, alone on its line; without a known address (no request and no
    POOLWISE_PUBLIC_URL), the query to append to the app's address, never a made-up host."""
    link = links.share_url(s, share_base)
    if not link.startswith("?"):
        return [link]
    return [f"(append to the app's address; set {links.ENV_PUBLIC_URL} for a full link)", link]


def installed_command(command: str) -> str:
    """A `python -m wizard ...` line as the installed `poolwise` command, reading the
    scenario file by the name the app downloads it under."""
    if command.startswith("python -m wizard "):
        command = "poolwise " + command[len("python -m wizard "):]
    return command.replace("--scenario SCENARIO.toml", f"--scenario {SCENARIO_FILE}")


def named_service(rec: Recommendation, svc: ServiceResult) -> str | None:
    """The name a service's export goes by: its own when the scenario names its services
    (a scenario file or a link with s<i>_ keys: db_<name>.py, reproduced from the file);
    None for the flags form (db.py, reproduced by its flags)."""
    return svc.name if rec.scenario.named else None


def named_export(rec: Recommendation, svc: ServiceResult) -> tuple[Scenario | None, str | None]:
    """(estate, service) for a service's export (both None for the flags form)."""
    name = named_service(rec, svc)
    return (None, None) if name is None else (rec.scenario, name)


def refuse_credentials(rec: Recommendation) -> None:
    """Raise ScenarioError if a free-text parameter looks like a password, token or URL.

    Free-text values (max_connections_source, pgbouncer_version, ...) land in comments,
    the share link and the CLI line of every export: a pasted secret must not.
    """
    bad = credential_params(links.to_flat(rec.scenario))
    if bad:
        raise ScenarioError(f"--{bad[0].replace('_', '-')} looks like it holds a password, "
                            "token or URL with credentials; exports never carry secrets")
