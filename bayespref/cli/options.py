"""Command-line options shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

OutDir = Annotated[Path, typer.Option("--out", "-o", help="Output folder.")]
Seed = Annotated[int, typer.Option(help="Random seed; the same seed gives the same numbers.")]
