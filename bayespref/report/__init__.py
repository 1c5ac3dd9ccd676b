"""Layer 8, report: figures and the HTML report of a fit.

Imports only layers below: `errors` to `checks`. Figures are `matplotlib.figure.Figure`
objects, drawn without pyplot, so that no backend is selected for the user.
"""
