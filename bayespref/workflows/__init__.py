"""Layer 9, workflows: pipelines that chain the layers below: `fit` (sample, diagnose,
summarise, check, save), the active-learning loop, simulation-based calibration.

Imports any layer below, `collect` included.
"""
