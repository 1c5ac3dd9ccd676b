"""The errors bayespref raises: every one is a BayesprefError, so one handler catches them all.

Each also keeps the built-in base it had before they shared one (ValueError or RuntimeError).
"""

from __future__ import annotations


class BayesprefError(Exception):
    """Input, a folder or a fit that bayespref cannot use as asked; the message says where."""


class DataError(BayesprefError, ValueError):
    """Input that breaks a data contract; the message names file, row and column."""


class DataWarning(UserWarning):
    """Valid input that limits what a fit can say (uncompared tasks, a disconnected graph)."""


class SpecError(BayesprefError, ValueError):
    """A model spec with unknown keys or values; the message names the file and key."""


class FitError(BayesprefError, RuntimeError):
    """A fit that cannot be made, saved or loaded as asked."""


class ApproximationError(BayesprefError, RuntimeError):
    """The Laplace approximation cannot be made (no finite mode, or a singular Hessian)."""


class SelectError(BayesprefError, ValueError):
    """A selection that cannot be made as asked."""


class CollectError(BayesprefError, ValueError):
    """A collection that cannot run as asked: a busy or mismatched folder, a failing engine."""
