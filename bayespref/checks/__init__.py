"""Layer 7, checks: convergence diagnostics, posterior predictive checks, PSIS-LOO comparison.

Imports only layers below: `errors` to `analysis`.
"""
