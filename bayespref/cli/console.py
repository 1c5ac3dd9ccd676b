"""Terminal output shared by the CLI commands: stdout, stderr, and the error exit."""

from __future__ import annotations

import typer
from rich.console import Console

console = Console()
errors = Console(stderr=True)


def fail(error: Exception) -> None:
    """Print `error: ...` on stderr and exit with code 2 (bad input or failed work)."""
    errors.print(f"[bold red]error:[/] {error}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)
