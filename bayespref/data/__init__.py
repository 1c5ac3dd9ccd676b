"""Layer 2, data: the comparisons and tasks contracts, cells, task sets and simulation.

Imports only `errors` and `io`.
"""
