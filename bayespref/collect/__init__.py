"""Layer 5, collect: asking a model for choices and ratings: templates, pair design, engines,
parsing, a resumable store and the runner. The command is `bayespref collect`
(`bayespref/cli/collect.py`); the library entry point is `collect`.

Imports only `errors`, `io`, `data` and `model`.
"""

from bayespref.collect.plan import CollectConfig
from bayespref.collect.runner import CollectResult, collect, preview

__all__ = ["CollectConfig", "CollectResult", "collect", "preview"]
