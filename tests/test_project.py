"""The project's shape: a findable engine, a README that is a user's guide."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_no_import_cycle_and_no_long_function_or_class(capsys) -> None:
    assert _tool("code_shape").main() == 0, capsys.readouterr().out


def test_readme_is_a_users_guide_of_at_most_20_kb() -> None:
    assert len((ROOT / "README.md").read_bytes()) <= 20_000


def test_the_project_speaks_of_itself_not_of_its_history() -> None:
    pattern = re.compile(r"\bsessions?\b|\bissue [0-9]+", re.IGNORECASE)
    places = [ROOT / "README.md", *[ROOT / d for d in ("docs", "src", "benchmarks", "tools")]]
    offending = []
    for place in places:
        files = [place] if place.is_file() else [p for p in place.rglob("*") if p.is_file()]
        for path in files:
            if path.suffix not in (".py", ".md", ".html", ".js", ".css", ".txt", ".json"):
                continue
            if "egg-info" in str(path):
                continue
            for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
                if pattern.search(line) and 'scope="session"' not in line:
                    offending.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:80]}")
    assert not offending, "\n".join(offending)
