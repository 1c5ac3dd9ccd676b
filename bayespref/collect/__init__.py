"""Collecting choices from a model: templates, pair design, engines, parsing, a resumable
store. The command is `bayespref collect` (command.py); the library entry point is `collect`."""

from bayespref.collect.runner import CollectConfig, CollectResult, collect, preview

__all__ = ["CollectConfig", "CollectResult", "collect", "preview"]
