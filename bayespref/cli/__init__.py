"""Layer 10, cli: the `bayespref` command, one module per command group, registered in `app.py`,
with one error path for every command.

Imports any layer below.
"""
