"""Terminal output shared by the CLI commands: stdout, stderr, and the error exit."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.markup import escape

console = Console()
errors = Console(stderr=True)


def fail(error: Exception) -> None:
    """Print `error: ...` on stderr and exit with code 2 (bad input or failed work)."""
    # Escaped: a message is text, and "pip install 'bayespref[vllm]'" must keep its brackets.
    errors.print(f"[bold red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
    raise typer.Exit(code=2)
