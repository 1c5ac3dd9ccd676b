"""Layer 5, inference: devices and precision, NUTS, the Laplace approximation (and the cells'
Fisher information it reads), the pointwise log-likelihood.

Imports only layers below: `errors`, `io`, `data`, `model`, `posterior`.
"""
