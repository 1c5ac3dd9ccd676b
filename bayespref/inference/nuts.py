"""NUTS through NumPyro on PyMC's jaxified log density: chains start from PyMC's jittered initial
points or from a warm start (inference/warm_start.py), and sample a fixed number of draws or in
blocks until a caller's test of the draws says they are enough. Its functions are compiled from
the shapes of the model's variables on background threads (prepare_nuts), so that compiling
overlaps the caller's warm start."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from operator import attrgetter

import numpy as np
import xarray as xr

from bayespref.inference import device
from bayespref.inference.pooled_mass import pooled_updates, with_pooled_mass
from bayespref.inference.settings import SamplerSettings
from bayespref.inference.step_calibration import (
    CALIBRATION_RUN,
    needs_calibration,
    step_factors,
    with_step_factors,
)
from bayespref.inference.variables import VariablesAtDraws
from bayespref.inference.warm_start import WarmStart

# Iterations per compiled call of the sampler (the rest of a block: one more). Short, so that
# tuning can set pooled mass matrices between calls (inference/pooled_mass.py); 400 iterations
# took as long in calls of 25 as of 100 (4.8-5.0 s against 4.8-5.1 s, conditions.py's design).
_CHUNK = 25

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
    # Iterations of tuning after which the chains were given pooled mass matrices.
    pooled_mass_updates: list[int] = field(default_factory=list)
    # Per chain, the factor on its tuned step after short tuning (inference/step_calibration.py).
    step_factors: list[float] = field(default_factory=list)


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


def _kernel_functions(model, settings: SamplerSettings) -> tuple[Callable, Callable]:
    """NumPyro's NUTS on the model's log density, as its functional pair: one chain's initial
    state from (key, start, inverse mass matrix), set to adapt over `settings.tune` iterations;
    and one iteration. The mass matrix is an argument, so that the initial state compiles before
    a warm start has computed it."""
    import jax
    from numpyro.infer.hmc import hmc
    from pymc.sampling.jax import get_jaxified_logp

    # get_jaxified_logp's negative_logp=False gives the negative log density NumPyro expects.
    # Jitted, so that tracing NumPyro's kernel traces the log density once, not at every use.
    potential = jax.jit(get_jaxified_logp(model, negative_logp=False))
    init_kernel, sample_kernel = hmc(potential_fn=potential, algo="NUTS")

    def initial_state(key, start, inverse_mass_matrix):
        key, _ = jax.random.split(key)  # as NumPyro's NUTS.init splits it
        return init_kernel(
            start,
            settings.tune,
            inverse_mass_matrix=inverse_mass_matrix,
            adapt_mass_matrix=settings.adapt_mass_matrix,
            target_accept_prob=settings.target_accept,
            rng_key=key,
        )

    return initial_state, sample_kernel


def _iterations(sample_kernel: Callable, length: int) -> Callable:
    """One chain's state through `length` more NUTS iterations (adapting while tuning, as the
    state says): (state, draws of the value variables, extra fields)."""
    import jax

    def one_chain(state):
        def step(state, _):
            state = sample_kernel(state)
            fields = {name: attrgetter(name)(state) for name in _STAT_NAMES}
            return state, (state.z, fields)

        return jax.lax.scan(step, state, None, length=length)

    return one_chain


@dataclass
class PreparedNuts:
    """NUTS for one model, its functions compiling on background threads (prepare_nuts)."""

    model: object
    settings: SamplerSettings
    dtype: np.dtype
    width: int  # of the flat vector of value variables
    pool: ThreadPoolExecutor
    initial_states: Future  # (keys, starts, inverse mass matrices), per chain -> states
    runs: dict[int, Future]  # by run length: states -> (states, (draws, extra fields))
    posterior: VariablesAtDraws


def prepare_nuts(model, settings: SamplerSettings) -> PreparedNuts:
    """Trace the sampler's functions for `model` from the shapes of its value variables and
    compile them on background threads, in the order the sampler needs them: the initial
    states, every run length that tuning, its step calibration and blocks of `settings.draws`
    use, the reported variables. Compilation was 5-11 s of a 30 s fit on 2 cores; this way it
    overlaps the caller's warm start. Call it in the precision the sampler runs in: the traces
    keep their dtypes."""
    import jax
    from jax.flatten_util import ravel_pytree

    point = model.initial_point()
    values = [np.asarray(point[value.name]) for value in model.value_vars]
    flat, unravel = ravel_pytree(values)
    chains = settings.chains
    keys = jax.eval_shape(lambda: jax.random.split(jax.random.PRNGKey(0), chains))
    starts = [jax.ShapeDtypeStruct((chains, *value.shape), value.dtype) for value in values]
    masses = jax.ShapeDtypeStruct((chains, flat.size), flat.dtype)
    initial_state, sample_kernel = _kernel_functions(model, settings)
    lowered = _chain_map(initial_state, chains).lower(keys, starts, masses)
    states = jax.tree.map(lambda out: jax.ShapeDtypeStruct(out.shape, out.dtype), lowered.out_info)
    # Two workers: the run compiles while the initial state does, not after it (XLA compiles
    # each on one thread): the run was ready 0.4 s sooner on 2 cores (conditions.py's design).
    pool = ThreadPoolExecutor(max_workers=2)
    initial_states = pool.submit(lowered.compile)
    runs = {}
    for length in dict.fromkeys(
        run_lengths(settings.tune)
        + ([CALIBRATION_RUN] if needs_calibration(settings.tune) else [])
        + run_lengths(settings.draws)
    ):
        run = _chain_map(_iterations(sample_kernel, length), chains).lower(states)
        runs[length] = pool.submit(run.compile)
    posterior = VariablesAtDraws(model, unravel, flat.size, flat.dtype, pool)
    return PreparedNuts(
        model, settings, flat.dtype, flat.size, pool, initial_states, runs, posterior
    )


def _starts(prepared: PreparedNuts, warm: WarmStart | None, record: SamplingRecord):
    """Every chain's start and initial inverse mass matrix: the warm start's, or PyMC's jittered
    initial points and the identity."""
    settings = prepared.settings
    if warm is None:
        starts = _jittered_starts(prepared.model, settings.chains, settings.seed)
        masses = np.ones(prepared.width, prepared.dtype)
    else:
        warm = warm.as_dtype(prepared.dtype)
        starts, masses = warm.starts, warm.inverse_mass_matrix
        record.seconds_warm_start = warm.seconds
    return starts, np.tile(masses, (settings.chains, 1))


def sample_nuts(
    prepared: PreparedNuts,
    progressbar: bool,
    warm: WarmStart | None = None,
    enough: Callable[[xr.DataTree], bool] | None = None,
) -> tuple[xr.DataTree, SamplingRecord]:
    """Tune, then draw `settings.draws` per chain; with `enough`, keep drawing blocks of
    `settings.draws` until `enough(draws so far)` or `settings.max_draws` per chain."""
    import jax
    from rich.console import Console
    from rich.progress import Progress

    settings, model = prepared.settings, prepared.model
    record = SamplingRecord(init="laplace" if warm else "jitter")

    def run(state, length: int):
        state, draws = prepared.runs[length].result()(state)
        jax.block_until_ready(state)  # so that the progress bar follows the sampler
        bar.advance(progress, length)
        return state, draws

    samples, stats = [], []
    most = settings.max_draws if enough else settings.draws
    tuning = settings.tune + (CALIBRATION_RUN if needs_calibration(settings.tune) else 0)
    started = time.perf_counter()
    try:
        with Progress(console=Console(stderr=True), disable=not progressbar) as bar:
            progress = bar.add_task("NUTS (tuning, then draws)", total=tuning + most)
            keys = jax.random.split(jax.random.PRNGKey(settings.seed), settings.chains)
            state = prepared.initial_states.result()(keys, *_starts(prepared, warm, record))
            state = _tune(state, run, settings, record)
            while True:
                chunks = []
                for length in run_lengths(settings.draws):
                    state, chunk = run(state, length)
                    chunks.append(chunk)
                raw, fields = _concatenated(chunks)
                samples.append(_posterior(prepared.posterior, raw))
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
            bar.update(progress, total=tuning + record.draws_per_chain)
    finally:  # on an error too: compilations not started are dropped
        prepared.pool.shutdown(wait=False, cancel_futures=True)
    record.seconds_sampling = time.perf_counter() - started
    return idata, record


def _tune(state, run: Callable, settings: SamplerSettings, record: SamplingRecord):
    """`settings.tune` iterations of NumPyro's adaptation; from jittered starts of several
    chains, with pooled mass matrices early in short tuning (inference/pooled_mass.py); after
    short tuning, each chain's step set once more from its acceptance (step_calibration.py)."""
    lengths = run_lengths(settings.tune)
    pooling = record.init == "jitter" and settings.adapt_mass_matrix and settings.chains > 1
    updates = dict(pooled_updates(settings.tune, lengths)) if pooling else {}
    kept: list[np.ndarray] = []  # every tuning draw so far, flat, while updates remain
    done = 0
    for length in lengths:
        state, (draws, _) = run(state, length)
        done += length
        if not updates:
            continue
        kept.append(
            np.concatenate(
                [np.asarray(value).reshape(*value.shape[:2], -1) for value in draws], axis=2
            )
        )
        if done in updates:
            since = updates.pop(done)
            state = with_pooled_mass(state, np.concatenate(kept, axis=1)[:, since:])
            record.pooled_mass_updates.append(done)
    if needs_calibration(settings.tune):
        state, (_, fields) = run(state, CALIBRATION_RUN)
        factors = step_factors(
            np.asarray(fields["accept_prob"]).mean(axis=1), settings.target_accept
        )
        state = with_step_factors(state, factors)
        record.step_factors = [float(factor) for factor in factors]
    return state


def _posterior(variables: VariablesAtDraws, raw: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The reported variables at draws of the value variables shaped (chain, draw, ...), shaped
    the same way."""
    chains, draws = raw[0].shape[:2]
    flat = np.concatenate([value.reshape(chains * draws, -1) for value in raw], axis=1)
    return {
        name: value.reshape(chains, draws, *value.shape[2:])
        for name, value in variables(flat).items()
    }


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
