"""Provider catalogs over data/*.csv: instance classes, provider facts, proxy defaults.

Every figure carries its source URL and the date it was read. The formulas the
providers document (RDS/Aurora memory formula, Cloud SQL memory tiers) live here,
applied to data; the numbers themselves live in data/.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from wizard.core.errors import ScenarioError
from wizard.core.model import PROVIDERS
from wizard.core.results import Source


def _data_dir() -> Path:
    """wizard/data in an installed copy (the wheel maps data/ there), else the checkout's data/."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "data"
    return packaged if packaged.is_dir() else here.parent / "data"


DATA_DIR = _data_dir()

RDS_FORMULA = "LEAST(DBInstanceClassMemory/9531392, 5000)"
RDS_FORMULA_URL = (
    "https://docs.aws.amazon.com/AmazonRDS/latest/UserGuide/CHAP_Limits.html"
    "#RDS_Limits.MaxConnections"
)


@dataclass(frozen=True)
class InstanceClass:
    """One row of a provider catalog, with max_connections resolved."""

    provider: str
    instance_class: str
    family: str
    vcpu: float | None
    memory_gib: float | None
    max_connections: int
    basis: str
    estimated: bool
    source: Source
    note: str
    pooler_max_clients: int | None = None

    @property
    def source_label(self) -> str:
        if self.basis == "formula" and self.provider == "aws-aurora":
            kind = "Serverless v2" if self.family == "serverless-v2" else "provisioned"
            return (f"estimate from {RDS_FORMULA} ({RDS_FORMULA_URL}) on {self.memory_gib:g} GiB "
                    f"at the ratio of Aurora's own documented {kind} values "
                    f"(data/aws-aurora.csv), never above them; measure with SHOW "
                    "max_connections")
        if self.basis == "formula":
            return (f"estimate from {RDS_FORMULA} ({RDS_FORMULA_URL}) on {self.memory_gib:g} GiB "
                    f"less what the instance keeps (data/aws-rds-calibration.csv); "
                    f"measure with SHOW max_connections")
        how = {
            "documented": "documented default",
            "tier": "documented memory tier",
            "measured": "public measurement",
        }.get(self.basis, self.basis)
        return f"{how} ({self.source.url})"


def _num(text: str) -> float | None:
    text = (text or "").strip()
    return float(text) if text else None


def _read(name: str) -> list[dict[str, str]]:
    path = DATA_DIR / name
    with path.open(newline="", encoding="utf-8") as fh:
        return [row for row in csv.DictReader(fh) if any((v or "").strip() for v in row.values())]


@cache
def _rds_calibration() -> tuple[tuple[float, float], ...]:
    """(memory_gib, measured/nominal ratio) points, sorted by memory."""
    points = []
    for row in _read("aws-rds-calibration.csv"):
        mem = float(row["memory_gib"])
        nominal = mem * 2**30 / formula_divisor("aws-rds")
        points.append((mem, float(row["max_connections"]) / nominal))
    # Several measurements of one memory size are averaged, not all kept.
    by_mem: dict[float, list[float]] = {}
    for mem, ratio in points:
        by_mem.setdefault(mem, []).append(ratio)
    return tuple(sorted((m, sum(r) / len(r)) for m, r in by_mem.items()))


def formula_divisor(provider: str) -> float:
    fact = provider_fact(provider, "formula_divisor")
    return float(fact[0]) if fact else 9531392.0


def formula_cap(provider: str) -> int:
    fact = provider_fact(provider, "formula_cap")
    return int(fact[0]) if fact else 5000


@cache
def _aurora_calibration(serverless: bool) -> tuple[tuple[float, float], ...]:
    """(memory_gib, documented/nominal ratio) from Aurora's own table (data/aws-aurora.csv):
    Serverless v2 rows or provisioned rows, the highest documented value per memory, rows
    at the formula's cap left out (they say nothing of the ratio)."""
    cap = formula_cap("aws-aurora")
    by_mem: dict[float, float] = {}
    for row in _read("aws-aurora.csv"):
        mem, value = _num(row.get("memory_gib", "")), _num(row.get("max_connections", ""))
        if (row["basis"].strip() != "documented" or mem is None or value is None
                or value >= cap or ((row.get("family") or "").strip() == "serverless-v2")
                != serverless):
            continue
        ratio = value / (mem * 2**30 / formula_divisor("aws-aurora"))
        by_mem[mem] = max(by_mem.get(mem, 0.0), ratio)
    return tuple(sorted(by_mem.items()))


def dbinstanceclassmemory_ratio(memory_gib: float,
                                points: tuple[tuple[float, float], ...] | None = None) -> float:
    """Share of nominal memory that RDS reports as DBInstanceClassMemory.

    Interpolated in log(memory) between measured defaults (or the given points); held flat
    beyond the measured range, since RDS keeps a roughly constant share there.
    """
    pts = points or _rds_calibration()
    if memory_gib <= pts[0][0]:
        return pts[0][1]
    if memory_gib >= pts[-1][0]:
        return pts[-1][1]
    for (m0, r0), (m1, r1) in zip(pts, pts[1:], strict=False):
        if m0 <= memory_gib <= m1:
            t = (math.log(memory_gib) - math.log(m0)) / (math.log(m1) - math.log(m0))
            return r0 + t * (r1 - r0)
    return pts[-1][1]


def rds_max_connections(memory_gib: float, provider: str = "aws-rds", family: str = "") -> int:
    """Estimated default max_connections for an RDS/Aurora class of this nominal memory.

    Aurora's documented table sits below RDS's measured ratio for the same memory (16 GiB:
    1,722 on db.r6g.large), so Aurora classes without a documented row use Aurora's own
    ratios (Serverless v2's for Serverless v2 sizes), never RDS's.
    """
    nominal = memory_gib * 2**30 / formula_divisor(provider)
    points = (_aurora_calibration(family == "serverless-v2") if provider == "aws-aurora"
              else None)
    # A hair above the product keeps a documented value exact (1722/1802.5 x 1802.5).
    value = int(nominal * dbinstanceclassmemory_ratio(memory_gib, points) + 1e-6)
    return min(value, formula_cap(provider))


@cache
def cloudsql_tiers() -> tuple[tuple[float, float, int, Source], ...]:
    rows = []
    for row in _read("gcp-cloudsql-tiers.csv"):
        rows.append(
            (
                float(row["min_memory_gb"]),
                _num(row["max_memory_gb"]) or math.inf,
                int(row["max_connections"]),
                Source("Cloud SQL memory tier", row["source_url"], row["read_on"]),
            )
        )
    return tuple(sorted(rows))


def cloudsql_max_connections(memory_gb: float) -> tuple[int, Source]:
    """Default max_connections of a Cloud SQL machine with this much memory (GB)."""
    chosen = None
    for low, high, value, src in cloudsql_tiers():
        if memory_gb >= low - 1e-9 and (memory_gb < high or low == high):
            chosen = (value, src)
    if chosen is None:
        low, _, value, src = cloudsql_tiers()[0]
        chosen = (value, src)
    return chosen


# Digit counts are bounded so a crafted name cannot make int() work hard.
_CUSTOM_GCP = re.compile(r"^db-custom-(\d{1,4})-(\d{1,9})$")


def _gcp_rule(key: str, default: float) -> float:
    fact = provider_fact("gcp-cloudsql", key)
    try:
        return float(fact[0]) if fact else default
    except ValueError:
        return default


def check_cloudsql_custom(name: str, cpus: int, mb: int) -> None:
    """Refuse a db-custom-CPU-MB type that breaks Google's documented shape rules."""
    top = int(_gcp_rule("custom_vcpu_max", 96))
    low, high = _gcp_rule("custom_memory_per_vcpu_min_gb", 0.9), _gcp_rule(
        "custom_memory_per_vcpu_max_gb", 6.5)
    step, least = int(_gcp_rule("custom_memory_step_mb", 256)), int(
        _gcp_rule("custom_memory_min_mb", 3840))
    url = (provider_fact("gcp-cloudsql", "custom_vcpu_max") or ("", Source("", "")))[1].url
    where = f" (Cloud SQL instance settings, {url})" if url else ""
    if not (cpus == 1 or (cpus % 2 == 0 and 2 <= cpus <= top)):
        raise ScenarioError(f"{name}: Cloud SQL custom types take 1 vCPU or an even number "
                            f"from 2 to {top}, not {cpus}{where}")
    per = mb / 1024 / cpus
    if not low <= per <= high:
        raise ScenarioError(f"{name}: Cloud SQL custom memory must be {low:g} to {high:g} GB per "
                            f"vCPU, not {per:.2f} GB ({mb} MB / {cpus} vCPU){where}")
    if mb < least or mb % step:
        raise ScenarioError(f"{name}: Cloud SQL custom memory must be a multiple of {step} MB "
                            f"and at least {least} MB, not {mb} MB{where}")


def _resolve(provider: str, row: dict[str, str]) -> InstanceClass:
    basis = row["basis"].strip()
    mem = _num(row.get("memory_gib", ""))
    raw = _num(row.get("max_connections", ""))
    estimated = basis in ("formula", "measured")
    if basis == "formula":
        if mem is None:
            raise ValueError(f"{provider}: {row['instance_class']} has basis formula but no memory")
        value = rds_max_connections(mem, provider, (row.get("family") or "").strip())
    elif raw is None and basis == "tier" and mem is not None:
        value = cloudsql_max_connections(mem)[0]
    else:
        if raw is None:
            raise ValueError(f"{provider}: {row['instance_class']} has no max_connections")
        value = int(raw)
    return InstanceClass(
        provider=provider,
        instance_class=row["instance_class"].strip(),
        family=(row.get("family") or "").strip(),
        vcpu=_num(row.get("vcpu", "")),
        memory_gib=mem,
        max_connections=value,
        basis=basis,
        estimated=estimated,
        source=Source(f"{provider} {row['instance_class'].strip()}", row["source_url"].strip(),
                      row["read_on"].strip()),
        note=(row.get("note") or "").strip(),
        pooler_max_clients=int(n) if (n := _num(row.get("pooler_max_clients", ""))) else None,
    )


def check_provider(provider: str) -> str:
    if provider not in PROVIDERS:
        raise ScenarioError(
            f"unknown provider {provider!r}; valid choices: {', '.join(PROVIDERS)}"
        )
    return provider


@cache
def catalog(provider: str) -> tuple[InstanceClass, ...]:
    """All instance classes of a provider, in catalog order."""
    check_provider(provider)
    path = DATA_DIR / f"{provider}.csv"
    if not path.exists():
        return ()
    return tuple(_resolve(provider, row) for row in _read(path.name))


def instance_class(provider: str, name: str) -> InstanceClass:
    """Look up one class; Cloud SQL db-custom-CPU-MB types are computed from the tier table."""
    wanted = name.strip()
    for row in catalog(provider):
        if row.instance_class.lower() == wanted.lower():
            return row
    if provider == "gcp-cloudsql" and (m := _CUSTOM_GCP.match(wanted)):
        cpus, mb = int(m.group(1)), int(m.group(2))
        check_cloudsql_custom(wanted, cpus, mb)
        mem_gb = mb / 1024
        value, src = cloudsql_max_connections(mem_gb)
        return InstanceClass(provider, wanted, "db-custom", cpus, mem_gb, value, "tier", False,
                             src, "custom machine type: tier by memory")
    choices = [r.instance_class for r in catalog(provider)]
    more = f", ... ({len(choices)} in all)" if len(choices) > 12 else ""
    shown = ", ".join(choices[:12]) + more
    if not choices:
        raise ScenarioError(
            f"provider {provider!r} has no instance-class catalog; give the max_connections "
            "you measured (SHOW max_connections)"
        )
    raise ScenarioError(
        f"unknown instance class {name!r} for {provider}; valid choices: {shown}"
        f" (see `python -m wizard catalog --provider {provider}`)"
    )


@cache
def _facts(name: str) -> dict[tuple[str, str], tuple[str, Source, str]]:
    out = {}
    for row in _read(name):
        first = row.get("provider") or row.get("component")
        key = row.get("key") or row.get("setting")
        out[(first.strip(), key.strip())] = (
            row["value"].strip(),
            Source(f"{first.strip()} {key.strip()}", row["source_url"].strip(),
                   row["read_on"].strip()),
            (row.get("note") or "").strip(),
        )
    return out


def provider_fact(provider: str, key: str) -> tuple[str, Source] | None:
    """A provider-level fact (data/providers.csv) with its source, or None."""
    hit = _facts("providers.csv").get((provider, key))
    return (hit[0], hit[1]) if hit else None


def proxy_fact(component: str, setting: str) -> tuple[str, Source] | None:
    """A proxy or network default (data/proxies.csv) with its source, or None."""
    hit = _facts("proxies.csv").get((component, setting))
    return (hit[0], hit[1]) if hit else None


def provider_int(provider: str, key: str) -> tuple[int, str] | None:
    """A numeric provider fact and its source URL, or None when missing or not a number."""
    value, src = int_fact(provider_fact(provider, key), -1)
    return (value, src.url) if src is not None and value >= 0 else None


def proxy_int(component: str, setting: str, default: int) -> tuple[int, str]:
    """A numeric proxy/network default and its source URL (or a note when it is missing)."""
    value, src = int_fact(proxy_fact(component, setting), default)
    return value, (src.url if src else f"{component} default")


def int_fact(value: tuple[str, Source] | None, default: int) -> tuple[int, Source | None]:
    """The integer of a fact, or a default when the fact is missing or not a number."""
    if value is None:
        return default, None
    try:
        return int(float(value[0])), value[1]
    except ValueError:
        return default, value[1]
