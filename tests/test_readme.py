"""The README's option table is the one generated from the settings."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_option_table_is_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location("options_table", ROOT / "tools/options_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (ROOT / "README.md").read_text()
    assert module.readme_with_table(text) == text, "run: python tools/options_table.py --write"
    assert "| `--style-weight` | `500` |" in text
