"""Layer 4, posterior: the `Fit` object with typed diagnostics, its folder, and posterior draws.

Imports only layers below: `errors`, `io`, `data`, `model`.
"""
