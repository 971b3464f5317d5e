"""AppTest helpers shared by the app's test modules: open the app, change step, and
check that a run raised nothing."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

APP = "../app.py"  # AppTest.from_file resolves it against this file's directory


def new_app(query: dict[str, str] | None = None, timeout: float = 30) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=timeout)
    if query:
        at.query_params.update(query)
    return at.run()


def go(at: AppTest, step: str) -> AppTest:
    return at.radio(key="step").set_value(step).run()


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


# Issue 20's estate as a link: RDS db.r6g.xlarge with one replica, an API fleet 4..20 pods x 4
# workers at 300 req/s, a queue worker 2..6 pods x 8 processes and a nightly cron (both
# primary only). Its break points lie far apart.
ESTATE = {"provider": "aws-rds", "instance_class": "db.r6g.xlarge", "replicas": "1",
          "s1_name": "api", "s1_app_instances": "4", "s1_max_app_instances": "20",
          "s1_workers": "4", "s1_rps": "300", "s1_hold_ms": "20",
          "s2_name": "queue", "s2_kind": "worker", "s2_app_instances": "2",
          "s2_max_app_instances": "6", "s2_workers": "8", "s2_endpoints": "primary",
          "s3_name": "nightly", "s3_kind": "cron", "s3_app_instances": "1",
          "s3_endpoints": "primary"}
