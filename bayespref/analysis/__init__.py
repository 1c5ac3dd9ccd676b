"""Layer 6, analysis: summaries, predictions, pair selection, rates, ratings, the reference
method.

Imports only layers below: `errors`, `io`, `data`, `model`, `posterior`, `inference`.
"""
