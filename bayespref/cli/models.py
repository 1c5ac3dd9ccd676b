"""`bayespref models`: the named model specs, each with its description (what it is, and where
real data showed it should not be used)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table

from bayespref.cli.console import console


def models() -> None:
    """List the named models (`--model NAME`) with their descriptions; the default first."""
    from bayespref.model.spec import DEFAULT_MODEL, available_models, resolve_spec

    names = sorted(available_models(), key=lambda name: (name != DEFAULT_MODEL, name))
    table = Table(title="Named models (models/*.toml; --model NAME or a path to your own .toml)")
    table.add_column("model", no_wrap=True)
    table.add_column("description")
    for name in names:
        label = f"{name} (default)" if name == DEFAULT_MODEL else name
        table.add_row(escape(label), escape(resolve_spec(name).description))
    console.print(table)
