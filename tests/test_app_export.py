"""Exported modules reproduce the estate with the installed command and the real file
names (issue 20): `poolwise export --scenario poolwise-scenario.toml --service worker -o
db_worker.py`, never a placeholder; a worker's module shows a worker, not FastAPI; the app's
sidebar and Export step give the same command lines.
"""

from __future__ import annotations

import ast

import pytest

from tests.support import SERVICES_ESTATE as ESTATE
from tests.support import go, new_app, no_exception
from wizard.core import plan
from wizard.export import render_module
from wizard.scenario import links


@pytest.fixture(autouse=True)
def _isolated(isolated_app):
    """Every test here runs the app isolated (tests/conftest.py)."""


def modules() -> dict[str, str]:
    rec = plan.recommend(links.from_flat(ESTATE))
    return {v.name: render_module(rec, service=v.name, generated_on="2026-01-01")
            for v in rec.services}


def docstring(body: str) -> str:
    return ast.get_docstring(ast.parse(body)) or ""


def test_service_modules_name_the_installed_command_and_the_real_files():
    for name, body in modules().items():
        header = body.split('"""')[0]
        assert (f"#   poolwise export --scenario poolwise-scenario.toml --service {name} "
                f"-o db_{name}.py") in header
        assert "SCENARIO.toml" not in body and "python -m wizard" not in header
        compile(body, f"db_{name}.py", "exec")


def test_a_worker_module_shows_a_worker_and_a_web_module_fastapi():
    bodies = modules()
    worker, api, cron = docstring(bodies["worker"]), docstring(bodies["api"]), \
        docstring(bodies["cron"])
    assert "FastAPI" not in worker and "asyncio.run(main())" in worker
    assert "import db_worker as db" in worker and "consume the queue" in worker
    assert "FastAPI" not in cron and "run the job" in cron
    assert "FastAPI(lifespan=db.lifespan)" in api and "import db_api as db" in api


def test_one_fleet_module_gives_the_installed_command():
    rec = plan.recommend(links.from_flat({"provider": "aws-rds",
                                            "instance_class": "db.r6g.large"}))
    body = render_module(rec, generated_on="2026-01-01")
    header = body.split('"""')[0]
    assert "#   poolwise export --provider aws-rds" in header and "--output db.py" in header
    assert "python -m wizard" not in header
    assert "import db\n" in docstring(body)


def test_the_sidebar_and_export_step_give_the_installed_command():
    at = new_app(ESTATE)
    no_exception(at)
    codes = [c.value for c in at.sidebar.code]
    assert "poolwise recommend --scenario poolwise-scenario.toml" in codes
    go(at, "export")
    no_exception(at)
    (cli,) = [c.value for c in at.main.code if c.value.startswith("poolwise recommend")]
    assert "poolwise export --scenario poolwise-scenario.toml --service worker -o " \
           "db_worker.py" in cli
    assert "python -m wizard" not in cli


def test_the_report_reproduces_with_the_installed_command_and_the_real_file():
    from wizard.export import render_report

    rec = plan.recommend(links.from_flat(ESTATE))
    text = render_report(rec, service="worker", generated_on="2026-01-01")
    assert ("Reproduce: `poolwise export --scenario poolwise-scenario.toml --service worker "
            "--kind report -o report.md`") in text
    assert "SCENARIO.toml" not in text and "python -m wizard" not in text
