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
