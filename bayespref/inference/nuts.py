"""NUTS through NumPyro, started from PyMC's jittered initial points."""

from __future__ import annotations

import numpy as np
import xarray as xr

from bayespref.inference import device
from bayespref.inference.settings import SamplerSettings


def _jittered_starts(model, chains: int, seed: int) -> list[dict]:
    """PyMC's starting points, one per chain: the initial point plus U(-1, 1) jitter in the
    sampler's coordinates, keyed by value variable. PyMC's NumPyro path would also check each
    point's log density, evaluated op by op (3 s at any size); every model of model/builder.py has a
    finite density at every finite point, so the check is skipped."""
    import pytensor.tensor as pt
    from pymc.initial_point import make_initial_point_fns_per_chain

    functions = make_initial_point_fns_per_chain(
        model=model, overrides=None, jitter_rvs=set(model.free_RVs), chains=chains
    )
    seeds = np.random.default_rng(seed).integers(2**30, size=chains)
    # As tensors: PyMC maps them back through the transforms symbolically (its zero-sum
    # transform fails on NumPy arrays).
    return [
        {name: pt.as_tensor_variable(value) for name, value in function(int(s)).items()}
        for function, s in zip(functions, seeds, strict=True)
    ]


def sample_nuts(model, settings: SamplerSettings, progressbar: bool) -> xr.DataTree:
    # PyMC's JAX entry point itself: pm.sample would first assign PyMC's own step methods (1 s).
    from pymc.sampling.jax import sample_jax_nuts

    return sample_jax_nuts(
        draws=settings.draws,
        tune=settings.tune,
        chains=settings.chains,
        target_accept=settings.target_accept,
        random_seed=settings.seed,
        initvals=_jittered_starts(model, settings.chains, settings.seed),
        jitter=False,
        model=model,
        progressbar=progressbar,
        chain_method=device.chain_method(settings.chains),
        compute_convergence_checks=False,
        nuts_sampler="numpyro",
    )
