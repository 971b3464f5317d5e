"""The answer table: one row per service and endpoint it uses, every number a field of the
Recommendation (nothing recomputed here), worded for a person at a glance.

The table is HTML built here with every piece of text escaped (html.escape), so a service
name or a region shows as typed and is never markup. Below 560 px of its own width (a phone,
or the narrow "result so far" column) each row becomes a small card with the column names
beside the values, so nothing scrolls sideways.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from wizard.core.codes import CODES
from wizard.core.model import EndpointBudget, Finding, Recommendation

COLUMNS = ("service", "endpoint", "pool_size", "max_overflow",
           "database sees at everyone's peak", "headroom", "breaks at", "what binds")
KEY = "answer_table"  # the HTML table's class (tests read it)


@dataclass(frozen=True)
class Row:
    """One service on one endpoint, as shown."""

    service: str  # "" for a one-fleet scenario
    kind: str
    endpoint: str
    where: str  # " · class · region"
    pool_size: str
    max_overflow: str
    sees: str
    sees_own: str  # this service's part ("" for one fleet)
    pooler: str  # its clients on the pooler against the pooler's limit, the pool size to set
    headroom: str
    over: bool  # the endpoint is over its usable connections
    breaks: str
    today: str
    binds: str
    errors: tuple[Finding, ...]  # error-severity findings that name this row (or none)
    first: bool  # the service's first row (its name and what binds are shown there)
    span: int  # how many rows the service has


def _where(rec: Recommendation, ep: EndpointBudget) -> str:
    """" · class · region" of an endpoint (the region is the visitor's own label)."""
    parts = [ep.instance_class or ""]
    if ep.role.startswith("replica-"):
        parts.append(rec.scenario.replicas[int(ep.role.split("-")[1]) - 1].region)
    return "".join(f" · {p}" for p in parts if p)


def errors_for(rec: Recommendation, service: str, role: str) -> tuple[Finding, ...]:
    """The error findings that concern this row, read from their fields: those on its
    endpoint or on none, about its service, about none or about the endpoint as a whole (its
    code's scope; `service` "": the one service's rows, which every finding concerns)."""
    return tuple(f for f in rec.warnings if f.severity == "error"
                 and f.endpoint in (None, role)
                 and (not service or not f.services or service in f.services
                      or CODES[f.code].scope == "endpoint"))


def _pooler(proxy: str | None, ep: EndpointBudget, shared: bool = False) -> str:
    """ "clients on Supavisor: 200 of 400 · set its pool size to 36" from the endpoint's
    proxy sides ("" without a pooler client limit); `shared`: the services' pooler."""
    name = "Supavisor" if (proxy or "").startswith("supavisor") else "the pooler"
    parts = []
    c = ep.client_side
    if c is not None and c.limit is not None:
        parts.append(f"its clients on {name}: {c.worst_case:,} of {c.limit:,} shared" if shared
                     else f"clients on {name}: {c.worst_case:,} of {c.limit:,}")
    srv = ep.server_side
    if srv is not None and srv.configured is not None and name == "Supavisor":
        parts.append(f"set its pool size to {srv.configured:,} (Database Settings)")
    return " · ".join(parts)


def _headroom(ep: EndpointBudget) -> tuple[str, bool]:
    if ep.headroom >= 0:
        return f"{ep.headroom:,} to spare", False
    return f"{-ep.headroom:,} over", True


def _breaks(n: int | None, today: int, serverless: bool) -> tuple[str, str]:
    unit = "invocations" if serverless else "instances"
    return ("never" if n is None else f"{n:,} {unit}"), f"today {today:,}"


def rows(rec: Recommendation) -> list[Row]:
    """The table's rows: per service (in the order given) each endpoint it uses."""
    out: list[Row] = []
    one = len(rec.services) == 1  # one service: no service column, nothing to share
    for svc in rec.services:
        own = svc.rec.scenario
        name = "" if one else svc.name
        for i, role in enumerate(svc.endpoints):
            ep = rec.endpoint(role)
            b = next(x for x in ep.by_service if x.service == svc.name)
            null = svc.rec.engine(role).poolclass == "NullPool"
            room, over = _headroom(ep)
            out.append(Row(
                name, "" if one else svc.kind, role, _where(rec, ep),
                "NullPool" if null else str(b.pool_size),
                "–" if null else str(b.max_overflow),
                f"{ep.worst_case:,} of {ep.usable:,}",
                "" if one else f"this service {b.worst_case:,}",
                _pooler(own.proxy, svc.rec.endpoint(role), shared=not one), room, over,
                *_breaks(b.breaks_at, svc.service.fleet_size, svc.service.serverless),
                svc.rec.binding, errors_for(rec, name, role), i == 0,
                len(svc.endpoints)))
    return out


def as_text(rec: Recommendation) -> str:
    """The table as tab-separated text with a header (what the copy button copies)."""
    lines = ["\t".join(COLUMNS)]
    for r in rows(rec):
        flag = " (error: see above)" if r.errors else ""
        own = "".join(f" ({x})" for x in (r.sees_own, r.pooler) if x)
        lines.append("\t".join((r.service or "app", r.endpoint + r.where, r.pool_size,
                                r.max_overflow, r.sees + own, r.headroom + flag,
                                f"{r.breaks} ({r.today})", r.binds)))
    return "\n".join(lines)


CSS = """<style>
.st-key-answer_box { container-type: inline-size; }
table.answer_table { border-collapse: collapse; width: 100%; font-size: 0.86rem;
  line-height: 1.3; }
table.answer_table th { text-align: left; font-weight: 600; padding: 0.25rem 0.4rem;
  border-bottom: 2px solid rgba(128,128,128,0.4); hyphens: none; word-break: normal; }
table.answer_table td { padding: 0.25rem 0.4rem; vertical-align: top;
  border-bottom: 1px solid rgba(128,128,128,0.2); overflow-wrap: anywhere; }
table.answer_table td.num { font-variant-numeric: tabular-nums; font-weight: 700;
  font-size: 1.05rem; white-space: nowrap; }
table.answer_table td.ok { color: #1a7f37; }
table.answer_table td.bad, table.answer_table .err { color: #cf222e; font-weight: 600; }
table.answer_table td.bad .nw { font-weight: 400; }
table.answer_table td.binds { font-size: 0.8rem; }
table.answer_table .kind { opacity: 0.7; font-size: 0.78rem; }
table.answer_table .nw { white-space: nowrap; }
@container (max-width: 560px) {
  table.answer_table thead { display: none; }
  table.answer_table, table.answer_table tbody, table.answer_table tr,
  table.answer_table td { display: block; width: 100%; box-sizing: border-box; }
  table.answer_table tr { border-bottom: 1px solid rgba(128,128,128,0.3);
    padding: 0.2rem 0; }
  table.answer_table td { border: none; padding: 0.05rem 0.2rem; }
  table.answer_table td.svc { font-size: 1rem; padding-top: 0.4rem; }
  table.answer_table td[data-label]::before { content: attr(data-label) ": ";
    font-weight: 400; opacity: 0.75; font-size: 0.8rem; }
  table.answer_table td.num { display: inline-block; width: 50%; }
}
</style>"""


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def as_html(rec: Recommendation) -> str:
    """The table as escaped HTML (CSS apart, in `CSS`)."""
    show_service = len(rec.services) > 1
    cols = COLUMNS if show_service else COLUMNS[1:]
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    body = []
    for r in rows(rec):
        cells = []
        if show_service:
            if r.first:
                cells.append(f'<td class="svc" rowspan="{r.span}"><b>{_e(r.service)}</b> '
                             f'<span class="kind">{_e(r.kind)}</span></td>')
        where = f'<span class="kind">{_e(r.where)}</span>' if r.where else ""
        cells.append(f'<td data-label="endpoint"><b>{_e(r.endpoint)}</b>{where}</td>')
        cells.append(f'<td class="num" data-label="pool_size">{_e(r.pool_size)}</td>')
        cells.append(f'<td class="num" data-label="max_overflow">{_e(r.max_overflow)}</td>')
        own = "".join(f'<br><span class="kind">{_e(x)}</span>'
                      for x in (r.sees_own, r.pooler) if x)
        cells.append(f'<td data-label="sees at everyone\'s peak"><span class="nw">{_e(r.sees)}'
                     f'</span>{own}</td>')
        if r.errors:
            word = "error" if len(r.errors) == 1 else f"{len(r.errors)} errors"
            cells.append(f'<td class="bad" data-label="headroom"><span class="nw">'
                         f'{_e(r.headroom)} with these pools</span><br>'
                         f'<span class="err">⚠ {word}: see above</span></td>')
        else:
            cells.append(f'<td class="{"bad" if r.over else "ok"}" data-label="headroom">'
                         f'<span class="nw">{_e(r.headroom)}</span></td>')
        cells.append(f'<td data-label="breaks at"><span class="nw">{_e(r.breaks)}</span> '
                     f'<span class="kind nw">{_e(r.today)}</span></td>')
        if r.first:
            cells.append(f'<td class="binds" data-label="what binds" rowspan="{r.span}">'
                         f'{_e(r.binds)}</td>')
        err = " error" if r.errors else ""
        body.append(f'<tr class="row{err}" data-service="{_e(r.service)}" '
                    f'data-endpoint="{_e(r.endpoint)}">{"".join(cells)}</tr>')
    return (f'<table class="{KEY}"><thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')
