"""The live check: measure a real database (or pooler) and feed the facts back.

Public API (UI-free; the Streamlit step and `python -m wizard live` both call it):
parse_target, run_live_check, run_exhaustion, exhaustion_plan, report_overrides,
endpoint_overrides, apply_overrides, service_usage, stated_limit, live_enabled,
check_allowed, LiveTarget, LiveReport, LiveError. What a report holds (Readings, PrePing,
PoolerDetection, Exhaustion, ...) is in wizard.live.report.
"""

from wizard.live.check import (
    CHECK_TIMEOUT,
    EXHAUSTION_CAP,
    detect_pooler,
    exhaustion_plan,
    measure_pre_ping,
    read_server,
    run_exhaustion,
    run_live_check,
    stated_limit,
)
from wizard.live.connect import APP_NAME, CONNECT_TIMEOUT
from wizard.live.diagnosis import probe_postgres
from wizard.live.errors import LiveError
from wizard.live.report import LiveReport, apply_overrides, endpoint_overrides, report_overrides
from wizard.live.target import (
    ENV_ALLOWED_HOSTS,
    ENV_DISABLED,
    ENV_PASSWORD,
    LiveTarget,
    allowed_hosts,
    allowed_ports,
    check_allowed,
    live_enabled,
    parse_target,
    request_host_allowed,
)
from wizard.live.usage import EndpointUsage, OtherUsage, ServiceUsage, service_usage

__all__ = [
    "APP_NAME", "CHECK_TIMEOUT", "CONNECT_TIMEOUT", "ENV_ALLOWED_HOSTS", "ENV_DISABLED",
    "ENV_PASSWORD", "EXHAUSTION_CAP", "LiveError", "LiveReport", "LiveTarget", "allowed_hosts",
    "apply_overrides", "check_allowed", "detect_pooler", "exhaustion_plan", "live_enabled",
    "measure_pre_ping", "parse_target", "probe_postgres", "read_server", "report_overrides",
    "run_exhaustion", "run_live_check", "stated_limit", "allowed_ports", "request_host_allowed",
    "endpoint_overrides", "EndpointUsage", "OtherUsage", "ServiceUsage", "service_usage",
]
