"""Layer 3, model: model specs, the choice formula, the likelihood, zero sums within datasets, the
refusal and overdispersion terms and the PyMC model builder.

Imports only `errors`, `io` and `data`.
"""
