"""NUTS through NumPyro on PyMC's jaxified log density: chains start from PyMC's jittered initial
points or from a warm start (inference/warm_start.py), and sample a fixed number of draws or in
blocks until a caller's test of the draws says they are enough."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter

import numpy as np
import xarray as xr

from bayespref.inference import device
from bayespref.inference.settings import SamplerSettings
from bayespref.inference.warm_start import WarmStart

_CHUNK = 100  # iterations per compiled call of the sampler (the rest of a block: one more)

# NumPyro's names for the stats, as PyMC names them in sample_stats.
_STAT_NAMES = {
    "potential_energy": "lp",
    "adapt_state.step_size": "step_size",
    "num_steps": "n_steps",
    "accept_prob": "acceptance_rate",
    "energy": "energy",
    "diverging": "diverging",
}


@dataclass
class SamplingRecord:
    """What the sampler did, for diagnostics.json."""

    init: str
    draws_per_chain: int = 0
    blocks: int = 0
    target_reached: bool | None = None  # None: fixed draws, no target
    seconds_warm_start: float = 0.0
    seconds_sampling: float = 0.0
    seconds_to_trust: float | None = None  # sampling start to the block that reached the target


def _jittered_starts(model, chains: int, seed: int) -> list[np.ndarray]:
    """PyMC's starting points, one per chain: the initial point plus U(-1, 1) jitter in the
    sampler's coordinates, stacked per value variable. PyMC would also check each point's log
    density, evaluated op by op (3 s at any size); every model of model/builder.py has a finite
    density at every finite point, so the check is skipped."""
    from pymc.initial_point import make_initial_point_fns_per_chain

    functions = make_initial_point_fns_per_chain(
        model=model, overrides=None, jitter_rvs=set(model.free_RVs), chains=chains
    )
    seeds = np.random.default_rng(seed).integers(2**30, size=chains)
    points = [function(int(s)) for function, s in zip(functions, seeds, strict=True)]
    return [np.stack([point[value.name] for point in points]) for value in model.value_vars]


def _posterior_function(model) -> Callable[[list[np.ndarray]], dict[str, np.ndarray]]:
    """A compiled map from draws of the model's value variables, shaped (chain, draw, ...), to
    its reported variables shaped the same way."""
    from jax.flatten_util import ravel_pytree

    from bayespref.inference.approx import variables_function

    point = model.initial_point()
    _, unravel = ravel_pytree([np.asarray(point[value.name]) for value in model.value_vars])
    variables = variables_function(model, unravel)

    def posterior(samples: list[np.ndarray]) -> dict[str, np.ndarray]:
        chains, draws = samples[0].shape[:2]
        flat = np.concatenate([value.reshape(chains * draws, -1) for value in samples], axis=1)
        return {
            name: value.reshape(chains, draws, *value.shape[2:])
            for name, value in variables(flat).items()
        }

    return posterior


def _stats(fields: dict) -> dict[str, np.ndarray]:
    """sample_stats from NumPyro's extra fields shaped (chain, draw)."""
    stats = {_STAT_NAMES[name]: np.asarray(fields[name]) for name in _STAT_NAMES}
    stats["tree_depth"] = np.log2(stats["n_steps"]).astype(int) + 1
    return stats


def _chain_map(function: Callable, chains: int) -> Callable:
    """`function` of one chain's arguments, compiled over a leading chain axis: one CPU device
    per chain when there are enough, else vectorised on one device."""
    import jax

    if chains > 1 and device.chain_method(chains) == "parallel":
        return jax.pmap(function)
    return jax.jit(jax.vmap(function))  # one chain too: its state is given a chain axis


def _initial_states(kernel, settings: SamplerSettings, starts: list[np.ndarray]):
    """Every chain's NUTS state at its start, set to adapt over `settings.tune` iterations."""
    import jax

    keys = jax.random.split(jax.random.PRNGKey(settings.seed), settings.chains)
    return _chain_map(
        lambda key, start: kernel.init(key, settings.tune, start, (), {}), settings.chains
    )(keys, starts)


def _iterations(kernel, chains: int, length: int) -> Callable:
    """A function compiled once that takes the chains' states through `length` more NUTS
    iterations (adapting while tuning, as the state says): (states, draws of the value variables,
    extra fields), shaped (chain, draw, ...). Tuning and every block of draws run through it, so
    a fit with tuning and draws in hundreds compiles the sampler once (NumPyro's MCMC.run compiled
    its own loop, and blocks after it another)."""
    import jax

    def one_chain(state):
        def step(state, _):
            state = kernel.sample(state, (), {})
            fields = {name: attrgetter(name)(state) for name in _STAT_NAMES}
            return state, (state.z, fields)

        return jax.lax.scan(step, state, None, length=length)

    return _chain_map(one_chain, chains)


def run_lengths(total: int) -> list[int]:
    """`total` iterations as compiled runs: runs of _CHUNK, then one shorter run for the rest."""
    return [_CHUNK] * (total // _CHUNK) + ([total % _CHUNK] if total % _CHUNK else [])


def _to_datatree(model, blocks: list[dict], stats: list[dict]) -> xr.DataTree:
    from arviz_base import from_dict
    from pymc.backends.arviz import (
        coords_and_dims_for_inferencedata,
        find_constants,
        find_observations,
    )

    groups = {
        "posterior": {
            name: np.concatenate([b[name] for b in blocks], axis=1) for name in blocks[0]
        },
        "sample_stats": {
            name: np.concatenate([s[name] for s in stats], axis=1) for name in stats[0]
        },
    }
    for name, group in (("observed_data", find_observations), ("constant_data", find_constants)):
        found = group(model)
        if found:
            groups[name] = found
    coords, dims = coords_and_dims_for_inferencedata(model)
    return from_dict(data=groups, coords=coords, dims=dims, sample_dims=["chain", "draw"])


def _kernel(model, settings: SamplerSettings, warm: WarmStart | None, record: SamplingRecord):
    """NumPyro's NUTS on the model's log density, and the chains' starts."""
    import jax
    from numpyro.infer import NUTS
    from pymc.sampling.jax import get_jaxified_logp

    options = {"adapt_mass_matrix": settings.adapt_mass_matrix}
    if warm is not None:
        warm = warm.as_dtype("float64" if jax.config.read("jax_enable_x64") else "float32")
        starts = warm.starts
        options["inverse_mass_matrix"] = warm.inverse_mass_matrix
        record.seconds_warm_start = warm.seconds
    else:
        starts = _jittered_starts(model, settings.chains, settings.seed)
    # get_jaxified_logp's negative_logp=False gives the negative log density NumPyro expects.
    potential = get_jaxified_logp(model, negative_logp=False)
    kernel = NUTS(potential_fn=potential, target_accept_prob=settings.target_accept, **options)
    return kernel, starts


def sample_nuts(
    model,
    settings: SamplerSettings,
    progressbar: bool,
    warm: WarmStart | None = None,
    enough: Callable[[xr.DataTree], bool] | None = None,
) -> tuple[xr.DataTree, SamplingRecord]:
    """Tune, then draw `settings.draws` per chain; with `enough`, keep drawing blocks of
    `settings.draws` until `enough(draws so far)` or `settings.max_draws` per chain."""
    import jax
    from rich.console import Console
    from rich.progress import Progress

    record = SamplingRecord(init="laplace" if warm else "jitter")
    kernel, starts = _kernel(model, settings, warm, record)
    compiled: dict[int, Callable] = {}  # by run length: one for tuning and draws in 100s

    def run(state, length: int):
        if length not in compiled:
            compiled[length] = _iterations(kernel, settings.chains, length)
        state, draws = compiled[length](state)
        jax.block_until_ready(state)  # so that the progress bar follows the sampler
        bar.advance(progress, length)
        return state, draws

    posterior, samples, stats = _posterior_function(model), [], []
    most = settings.max_draws if enough else settings.draws
    started = time.perf_counter()
    with Progress(console=Console(stderr=True), disable=not progressbar) as bar:
        progress = bar.add_task("NUTS (tuning, then draws)", total=settings.tune + most)
        state = _initial_states(kernel, settings, starts)
        for length in run_lengths(settings.tune):
            state, _ = run(state, length)
        while True:
            chunks = []
            for length in run_lengths(settings.draws):
                state, chunk = run(state, length)
                chunks.append(chunk)
            raw, fields = _concatenated(chunks)
            samples.append(posterior(raw))
            stats.append(_stats(fields))
            record.blocks += 1
            record.draws_per_chain += settings.draws
            idata = _to_datatree(model, samples, stats)
            if enough is None:
                break
            record.target_reached = bool(enough(idata))
            if record.target_reached:
                record.seconds_to_trust = time.perf_counter() - started
            if record.target_reached or record.draws_per_chain + settings.draws > most:
                break
        bar.update(progress, total=settings.tune + record.draws_per_chain)
    record.seconds_sampling = time.perf_counter() - started
    return idata, record


def _concatenated(chunks: list) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """One block's value-variable draws and extra fields from its chunks, along the draw axis."""
    raw = [
        np.concatenate([np.asarray(z[i]) for z, _ in chunks], axis=1)
        for i in range(len(chunks[0][0]))
    ]
    fields = {
        name: np.concatenate([np.asarray(f[name]) for _, f in chunks], axis=1)
        for name in chunks[0][1]
    }
    return raw, fields
