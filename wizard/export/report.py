"""The sizing report (Markdown): the endpoints' budgets, each service's engines and load,
the findings."""

from __future__ import annotations

import datetime as dt
from typing import Any

import wizard
from wizard.core import findings, projection, queueing, sizing
from wizard.core.model import (
    Recommendation,
    Scenario,
)
from wizard.export.common import (
    app_link,
    fleet_text,
    installed_command,
    named_export,
    refuse_credentials,
)
from wizard.scenario import links


def _md_row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def _md_table(header: list[str], rows: list[list[Any]]) -> list[str]:
    return [_md_row(header), _md_row(["---"] * len(header)), *(_md_row(r) for r in rows)]


def render_report(rec: Recommendation, *, generated_on: str | None = None,
                  share_base: str | None = None, service: str | None = None) -> str:
    """The sizing report in Markdown: what each endpoint sees, then every service's
    scenario, budgets, settings, rules (only the named one's, with `service`), then the
    findings and sources."""
    refuse_credentials(rec)
    if service is not None:
        svc = rec.service(service)
        return _service_report(svc.rec, generated_on=generated_on, share_base=share_base,
                               estate=rec.scenario, service=svc.name, findings=True)
    return _plan_report(rec, generated_on=generated_on, share_base=share_base)


def _service_report(rec: Recommendation, *, generated_on: str | None,
                    share_base: str | None, estate: Scenario | None, service: str | None,
                    findings: bool) -> str:
    """One service's part of the report (its findings and sources too with `findings`)."""
    s = rec.scenario
    generated_on = generated_on or dt.date.today().isoformat()
    title = f"# Connection pool sizing: {s.provider} {s.instance_class or ''}".rstrip()
    if service is not None:
        title += f", service {service}"
    link = app_link(estate or s, share_base)
    opener = (f"[Open this scenario]({link[0]})." if len(link) == 1
              else f"Open this scenario: `{link[1]}` {link[0]}.")
    out = [f"{title} via {s.proxy}",
           "",
           f"Generated on {generated_on} by poolwise {wizard.__version__}. {opener}",
           "", "Reproduce: `" + (installed_command(links.cli_command(estate or s, "export"))
                                  + (f" --service {service}" if service else ""))
           + " --kind report -o report.md`",
           "", "## Scenario", ""]
    flat = links.to_flat(s)
    out += _md_table(["parameter", "value"], [[k, v if v else "(none)"] for k, v in flat.items()])
    out += ["", f"Fleet: {fleet_text(rec)}.", "", "## Budget per endpoint", ""]
    rows = []
    for e in rec.endpoints:
        rows.append([e.role, e.instance_class or "-", e.max_connections_label, e.reserved,
                     e.usable, e.clients,
                     e.per_process_budget if e.per_process_budget is not None else "unbounded",
                     e.pool_size,
                     e.max_overflow, e.worst_case,
                     e.headroom if e.shared_headroom is None else e.shared_headroom])
    shared = any(e.shared_headroom is not None for e in rec.endpoints)
    out += _md_table(["endpoint", "class", "max_connections", "reserved", "usable", "engines",
                      "budget per engine", "pool_size", "max_overflow", "worst case",
                      "headroom (every service at its peak)" if shared else "headroom"],
                     rows)
    breaks = projection.break_lines(rec)
    if breaks:
        out += ["", *(f"- {line}." for line in breaks)]
    for e in rec.endpoints:
        source = e.max_connections_source
        if e.role == "primary" and rec.scenario.max_connections_source:
            source = f"`{source}`"  # the visitor's own words: never a live Markdown link
        out += ["", f"### {e.role}", "", f"- max_connections {e.max_connections_label}: "
                f"{source}"]
        for r in e.reserves:
            out.append(f"- reserved {r.count} for {r.name} ({r.source})")
        out.append(f"- usable: {e.usable}")
        out.append(f"- how: {e.explanation}")
        for label, side in (("server side", e.server_side), ("client side", e.client_side)):
            if side is not None:
                out.append(f"- proxy {label}: limit {side.limit or 'none'} ({side.limit_source}); "
                           f"worst case {side.worst_case} ({side.detail})")
    out += ["", "## Engine settings", ""]
    for g in rec.engines:
        out += [f"### {g.endpoint}", ""]
        settings = [("poolclass", g.poolclass)]
        if g.poolclass != "NullPool":
            settings += [("pool_size", g.pool_size), ("max_overflow", g.max_overflow),
                         ("pool_timeout", f"{g.pool_timeout:g}"),
                         ("pool_recycle", g.pool_recycle), ("pool_pre_ping", g.pool_pre_ping),
                         ("pool_use_lifo", g.pool_use_lifo)]
        settings.append(("connect_args", ", ".join(f"{k}={v!r}"
                                                   for k, v in g.connect_args.items())))
        out += _md_table(["setting", "value", "why"],
                         [[k, f"`{v}`", g.reasons.get(k, "")] for k, v in settings])
        out.append("")
    if rec.load:
        out += ["## Load", ""] + [f"- {line}" for line in queueing.load_lines(rec)] + [""]
    out += ["## Rules people copy", "",
            f"Per engine x engines = fleet total, against {sizing.rules_limit(rec)} on the "
            "primary.", ""]
    out += _md_table(["rule", "formula", "per engine", "fleet total", "fits", "source"],
                     [[r.name, r.formula, r.per_process, r.fleet_total,
                       "yes" if r.fits else "**no**", r.source] for r in rec.rules])
    out += ["", f"Binding bound: {rec.binding}"]
    if findings:
        out += _findings_md(rec)
    return "\n".join(out) + "\n"


def _findings_md(rec: Recommendation) -> list[str]:
    """The report's findings and sources."""
    out = ["", "## Warnings", ""]
    if not rec.warnings:
        out.append("None.")
    for sev in ("error", "warning", "info"):
        for w in (w for w in rec.warnings if w.severity == sev):
            out.append(f"- **{sev}** `{w.code}`: {findings.said(w, rec)} Fix: {w.fix}")
    out += ["", "## Sources", ""]
    for src in rec.sources:
        out.append(f"- {src.label}: {src.url}" + (f" (read {src.read_on})" if src.read_on else ""))
    return out


def _plan_report(rec: Recommendation, *, generated_on: str | None,
                 share_base: str | None) -> str:
    """Every service's report under one table of what each endpoint sees, then the
    findings and sources of the whole estate."""
    s = rec.scenario
    generated_on = generated_on or dt.date.today().isoformat()
    link = app_link(s, share_base)
    opener = (f"[Open this scenario]({link[0]})." if len(link) == 1
              else f"Open this scenario: `{link[1]}` {link[0]}.")
    out = [f"# Connection pool sizing: {s.provider}"
           + (f" {s.instance_class}" if s.instance_class else "")
           + f", {len(rec.services)} service" + ("s" if len(rec.services) != 1 else ""), "",
           f"Generated on {generated_on} by poolwise {wizard.__version__}. {opener}", "",
           "## What each endpoint sees at every service's peak", ""]
    out += _md_table(["endpoint", "usable", "service", "engines", "pool_size", "max_overflow",
                      "worst case", "breaks at"],
                     [[e.role, f"{e.usable:,}", b.service, f"{b.clients:,}", b.pool_size,
                       b.max_overflow, f"{b.worst_case:,}",
                       f"{b.breaks_at:,}" if b.breaks_at is not None else "-"]
                      for e in rec.endpoints for b in e.by_service])
    out += [""] + [f"- {e.role}: {e.explanation}; headroom {e.headroom:,}."
                   for e in rec.endpoints]
    sentence = projection.break_sentence(rec)
    if sentence:
        out += ["", sentence]
    for svc in rec.services:
        estate, named = named_export(rec, svc)
        body = _service_report(svc.rec, generated_on=generated_on, share_base=share_base,
                               estate=estate, service=named, findings=False)
        out += ["", "#" + body.split("\n", 1)[0], *body.split("\n")[1:]]
    out += _findings_md(rec)
    return "\n".join(out) + "\n"
