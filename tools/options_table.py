"""The README's table of stylisation options, generated from impasto.settings.

    python tools/options_table.py           # print it
    python tools/options_table.py --write   # put it into README.md between the markers

tests/test_readme.py checks that the README holds exactly this table.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from impasto.cli import _format_default
from impasto.settings import Settings


def options_table() -> str:
    defaults = Settings()
    rows = ["| option | default | what it does |", "| --- | --- | --- |"]
    for f in dataclasses.fields(Settings):
        meta = f.metadata
        flags = ", ".join(f"`{flag}`" for flag in ("--" + f.name.replace("_", "-"), *meta["flags"]))
        choices = f" ({' / '.join(meta['choices'])})" if meta["choices"] else ""
        default = _format_default(getattr(defaults, f.name))
        rows.append(f"| {flags} | `{default}` | {meta['help']}{choices} |")
    return "\n".join(rows) + "\n"


README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- options-table:start -->\n", "<!-- options-table:end -->"


def readme_with_table(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + START + options_table() + END + tail


if __name__ == "__main__":
    if "--write" in sys.argv:
        README.write_text(readme_with_table(README.read_text()))
    else:
        print(options_table(), end="")
