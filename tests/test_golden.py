"""Golden outputs of a dozen pinned scenarios: the guard for refactors that must not change answers.

Each `tests/golden/NAME.toml` is run through the CLI in-process (`recommend --json`, the text,
`check --json` and one exported module per service) and compared with the files beside it.
The JSON may gain fields (a golden key must still be there with the same value); text and
modules must match exactly, apart from the generation date.

After an intended change of answers, regenerate and review the diff:
    POOLWISE_GOLDEN_UPDATE=1 .venv/bin/python -m pytest -q tests/test_golden.py
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from pathlib import Path

import pytest

from wizard import cli

GOLDEN = Path(__file__).parent / "golden"
SCENARIOS = sorted(GOLDEN.glob("*.toml"))
UPDATE = os.environ.get("POOLWISE_GOLDEN_UPDATE") == "1"
_DATE = re.compile(r"\b20\d\d-\d\d-\d\d\b")


def _run(capsys, argv: list[str]) -> tuple[int, str]:
    try:
        code = cli.main(argv)
    except SystemExit as e:  # argparse and some verbs exit instead of returning
        code = e.code if isinstance(e.code, int) else 1
    out = capsys.readouterr().out
    return code, out


def _outputs(scenario: Path, capsys, tmp_path: Path) -> dict[str, str]:
    rel = str(scenario.relative_to(Path(__file__).parent.parent))
    got: dict[str, str] = {}
    code, out = _run(capsys, ["recommend", "--scenario", rel, "--json"])
    got["recommend.json"] = f"exit {code}\n{out}"
    code, out = _run(capsys, ["recommend", "--scenario", rel])
    got["recommend.txt"] = f"exit {code}\n{out}"
    code, out = _run(capsys, ["check", "--scenario", rel, "--json"])
    got["check.json"] = f"exit {code}\n{out}"
    if got["recommend.json"].startswith("exit 0"):
        names = [s.get("name") for s in tomllib.loads(scenario.read_text()).get("service", [])]
        for name in names or [None]:
            target = tmp_path / f"db_{name or 'app'}.py"
            argv = ["export", "--scenario", rel, "-o", str(target)]
            if name:
                argv += ["--service", name]
            code, _ = _run(capsys, argv)
            text = target.read_text() if target.exists() else ""
            got[f"{name or 'app'}.module"] = f"exit {code}\n{_DATE.sub('YYYY-MM-DD', text)}"
    return got


def _contains(golden, new, where: str = "$") -> list[str]:
    """Where `new` lacks or changes a value of `golden` (added dict keys are allowed)."""
    if isinstance(golden, dict):
        if not isinstance(new, dict):
            return [f"{where}: was an object"]
        out = []
        for k, v in golden.items():
            if k not in new:
                out.append(f"{where}.{k}: missing")
            else:
                out += _contains(v, new[k], f"{where}.{k}")
        return out
    if isinstance(golden, list):
        if not isinstance(new, list) or len(new) != len(golden):
            return [f"{where}: list changed length or type"]
        return [d for i, (a, b) in enumerate(zip(golden, new, strict=True))
                for d in _contains(a, b, f"{where}[{i}]")]
    return [] if golden == new else [f"{where}: {golden!r} -> {new!r}"]


def _compare_json(golden: str, new: str) -> list[str]:
    g_head, _, g_body = golden.partition("\n")
    n_head, _, n_body = new.partition("\n")
    if g_head != n_head:
        return [f"{g_head} -> {n_head}"]
    try:
        return _contains(json.loads(g_body), json.loads(n_body))
    except json.JSONDecodeError:
        return [] if g_body == n_body else ["output changed"]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_golden_outputs_unchanged(scenario: Path, capsys, tmp_path: Path) -> None:
    got = _outputs(scenario, capsys, tmp_path)
    assert got, "no outputs"
    for suffix, text in got.items():
        path = GOLDEN / f"{scenario.stem}.{suffix}"
        if UPDATE:
            path.write_text(text)
            continue
        assert path.exists(), f"{path.name} missing: regenerate with POOLWISE_GOLDEN_UPDATE=1"
        golden = path.read_text()
        if suffix.endswith(".json"):
            diffs = _compare_json(golden, text)
            assert not diffs, f"{path.name}: " + "; ".join(diffs[:10])
        else:
            assert text == golden, f"{path.name} changed"
    # every pinned file still has an output behind it
    pinned = {p.name for p in GOLDEN.glob(f"{scenario.stem}.*") if p.suffix != ".toml"}
    assert pinned <= {f"{scenario.stem}.{s}" for s in got} or UPDATE, pinned
