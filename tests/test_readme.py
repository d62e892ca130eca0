"""The README's option table and docs/options.md are the ones generated from the settings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tool():
    spec = importlib.util.spec_from_file_location("options_table", ROOT / "tools/options_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_option_table_is_up_to_date() -> None:
    text = (ROOT / "README.md").read_text()
    assert _tool().readme_with_table(text) == text, "run: python tools/options_table.py --write"
    assert "| `--style-weight` | `" in text


def test_options_page_is_up_to_date() -> None:
    page = (ROOT / "docs" / "options.md").read_text()
    assert _tool().options_page() == page, "run: python tools/options_table.py --write"
    assert "`--optimizer`, `--optimiser`" in page and "(lbfgs / adam)" in page
