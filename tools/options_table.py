"""The tables of stylisation options, generated from impasto.settings.

    python tools/options_table.py           # print the full table
    python tools/options_table.py --write   # put the short table into README.md between
                                            # the markers, and the full one into docs/options.md

The README's table gives each option's first clause; docs/options.md has every alias,
choice and the whole help text. tests/test_readme.py checks that both are up to date.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from impasto.console import format_default
from impasto.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
OPTIONS_PAGE = ROOT / "docs" / "options.md"
START, END = "<!-- options-table:start -->\n", "<!-- options-table:end -->"


def options_table(short: bool = False) -> str:
    defaults = Settings()
    rows = ["| option | default | what it does |", "| --- | --- | --- |"]
    for f in dataclasses.fields(Settings):
        meta = f.metadata
        names = ("--" + f.name.replace("_", "-"), *(() if short else meta["flags"]))
        flags = ", ".join(f"`{flag}`" for flag in names)
        default = format_default(getattr(defaults, f.name), meta["none"])
        if short:
            text = meta["help"].split("; ")[0]
        else:
            choices = f" ({' / '.join(meta['choices'])})" if meta["choices"] else ""
            text = meta["help"] + choices
        rows.append(f"| {flags} | `{default}` | {text} |")
    return "\n".join(rows) + "\n"


def readme_with_table(text: str) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return head + START + options_table(short=True) + END + tail


def options_page() -> str:
    return (
        "# Every option of `impasto stylize`\n\n"
        "Generated from `src/impasto/settings.py` by `python tools/options_table.py --write`; "
        "`impasto stylize --help` shows the same. `impasto video` and `impasto batch` take "
        "these too, plus their own (see their `--help`).\n\n" + options_table()
    )


if __name__ == "__main__":
    if "--write" in sys.argv:
        README.write_text(readme_with_table(README.read_text()))
        OPTIONS_PAGE.write_text(options_page())
    else:
        print(options_table(), end="")
