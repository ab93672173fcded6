"""Prints the README's settings table from otel_django.config.SETTINGS (the one source)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from otel_django.config import SETTINGS


def default_text(value: object) -> str:
    if value is None or value == ():
        return "—"
    if isinstance(value, tuple):
        return ", ".join(f"`{v}`" for v in value)
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def table() -> str:
    rows = [
        "| `OTEL_DJANGO` key | Environment (first wins) | Default | Meaning |",
        "|---|---|---|---|",
    ]
    for setting in SETTINGS:
        env = "<br>".join(f"`{name}`" for name in setting.env_names)
        doc = setting.doc.replace("|", "\\|")
        rows.append(f"| `{setting.name}` | {env} | {default_text(setting.default)} | {doc} |")
    return "\n".join(rows)


START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"


def write_readme(readme: Path) -> None:
    text = readme.read_text()
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    readme.write_text(f"{head}{START}\n{table()}\n{END}{tail}")


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write_readme(Path(__file__).resolve().parents[1] / "README.md")
    else:
        print(table())
