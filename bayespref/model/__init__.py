"""Layer 3, model: model specs, the choice formula, the likelihood and the PyMC model builder.

Imports only `errors`, `io` and `data`.
"""
