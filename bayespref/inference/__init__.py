"""Layer 5, inference: devices and precision, NUTS, the Laplace approximation, the pointwise
log-likelihood.

Imports only layers below: `errors`, `io`, `data`, `model`, `posterior`.
"""
