"""The pointwise log-likelihood of a posterior, for PSIS-LOO."""

from __future__ import annotations

import numpy as np
import xarray as xr

# Draws per block when computing the pointwise log-likelihood: bounds its float64 working memory.
_LOG_LIKELIHOOD_DRAWS = 100


def add_log_likelihood(idata: xr.DataTree, model) -> None:
    """Store the pointwise log-likelihood as float32, computed a block of draws at a time so that
    only the float32 result grows with the data (4 x 1000 draws x 332,000 cells in float64
    at once would be 10 GB). LOO needs no more precision than float32.

    Only observations per `cell`, the unit LOO leaves out, enter: refusal counts of completions
    (per task) inform the posterior but are no pointwise term, so fits with and without them
    are compared on how well they predict the same choice cells."""
    import pymc as pm

    per_cell = [
        rv.name for rv in model.observed_RVs if model.named_vars_to_dims.get(rv.name) == ("cell",)
    ]
    posterior = idata["posterior"].to_dataset()
    blocks = []
    for start in range(0, posterior.sizes["draw"], _LOG_LIKELIHOOD_DRAWS):
        block = posterior.isel(draw=slice(start, start + _LOG_LIKELIHOOD_DRAWS))
        computed = pm.compute_log_likelihood(
            xr.DataTree.from_dict({"posterior": block}),
            model=model,
            var_names=per_cell,
            extend_inferencedata=False,
            progressbar=False,
        )
        blocks.append(computed.astype(np.float32))
    idata["log_likelihood"] = xr.concat(blocks, dim="draw")
