"""The `bayespref` command line: a thin layer over the library.

Every command is registered here, through `guarded`: the one error path, which turns any
BayesprefError, or an OSError naming a file, into `error: ...` on stderr and exit code 2.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable

import typer

from bayespref.cli.collect import collect_command
from bayespref.cli.compare import compare
from bayespref.cli.complete import complete_command
from bayespref.cli.console import errors, fail
from bayespref.cli.contrast import contrast_command
from bayespref.cli.fit import fit
from bayespref.cli.judge import judge_command
from bayespref.cli.models import models
from bayespref.cli.predict import predict
from bayespref.cli.ratings import ratings_app
from bayespref.cli.refusals import refusals_command
from bayespref.cli.report import report_command
from bayespref.cli.select import select_command
from bayespref.cli.self_cross import self_cross_command
from bayespref.cli.simulate import simulate
from bayespref.errors import BayesprefError, DataWarning

app = typer.Typer(
    help="Measure what an LLM prefers, with honest uncertainty.", no_args_is_help=True
)
COMMANDS: dict[str, Callable[..., None]] = {
    "simulate": simulate,
    "fit": fit,
    "models": models,
    "predict": predict,
    "compare": compare,
    "contrast": contrast_command,
    "report": report_command,
    "select": select_command,
    "collect": collect_command,
    "complete": complete_command,
    "judge": judge_command,
    "self-cross": self_cross_command,
    "refusals": refusals_command,
}
GROUPS = {"ratings": ratings_app}


def guarded(command: Callable[..., None]) -> Callable[..., None]:
    """The command with bad input and unusable files reported in one line, not a traceback."""

    @functools.wraps(command)
    def run(*args, **kwargs) -> None:
        try:
            command(*args, **kwargs)
        except BayesprefError as error:
            fail(error)
        except OSError as error:
            named = error.filename is not None
            fail(OSError(f"'{error.filename}': {error.strerror}") if named else error)

    return run


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    label = "data" if issubclass(category, DataWarning) else category.__name__
    errors.print(f"[yellow]warning ({label}):[/] {message}", highlight=False, soft_wrap=True)


@app.callback()
def main() -> None:
    warnings.showwarning = _show_warning


for name, command in COMMANDS.items():
    app.command(name)(guarded(command))
for name, group in GROUPS.items():
    for registered in group.registered_commands:
        registered.callback = guarded(registered.callback)
    app.add_typer(group, name=name)
