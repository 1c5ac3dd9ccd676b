"""What one gradient costs on JAX: the probit likelihood written out against the fused kernel.

For simulated data of each size, times both in one process (milliseconds per call, the best of
--repeats rounds of calls, on one CPU device):
  likelihood  value and gradient of the cells' likelihood alone, in mu, sigma and the position
              bias, as PyMC's JAX backend compiles the Op's written-out graph and the fused kernel
  hessian     a block of Hessian columns of the same in mu, as --method approx builds its Hessian
  model       value and gradient of the default model's whole log density (with the kernel)
Usage:
    python benchmarks/gradient.py --sizes 500x10000,10000x332000 [--repeats 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from run import simulate_size, write_table


def _best_ms(function, arguments, calls: int, repeats: int) -> float:
    import jax

    jax.block_until_ready(function(*arguments))
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in range(calls):
            result = function(*arguments)
        jax.block_until_ready(result)
        best = min(best, (time.perf_counter() - started) / calls * 1e3)
    return best


def _likelihood_function(data, implementation: str):
    """The likelihood of the data's cells as a JAX function of (mu, sigma, position)."""
    import pytensor.tensor as pt
    from pymc.sampling.jax import get_jaxified_graph

    from bayespref.model.choice import first_choice_z
    from bayespref.model.likelihood import ProbitBinomialLogp, probit_binomial_logp

    cells = data.cells
    a_idx, b_idx = cells["a_idx"].to_numpy(), cells["b_idx"].to_numpy()
    k, n = cells["k"].to_numpy(np.int64), cells["n"].to_numpy(np.int64)
    mu, sigma, position = pt.dvector("mu"), pt.dvector("sigma"), pt.dscalar("position")
    z = first_choice_z(mu, sigma, position, a_idx, b_idx, data.task_dataset_idx, "global")
    if implementation == "kernel":
        per_cell = probit_binomial_logp(z, k, n)
    else:
        per_cell = ProbitBinomialLogp().build_inner_graph(z, pt.constant(k), pt.constant(n))[0]
    function = get_jaxified_graph(inputs=[mu, sigma, position], outputs=[per_cell.sum()])
    return lambda *inputs: function(*inputs)[0]


def _hessian_block(likelihood):
    """A block of Hessian columns in mu, as --method approx computes them: forward over reverse,
    vectorized over the block's unit directions."""
    import jax

    from bayespref.inference.mode_finding import HESSIAN_BLOCK

    gradient_in_mu = jax.grad(likelihood)

    def block(mu, sigma, position):
        def column(direction):
            return jax.jvp(lambda m: gradient_in_mu(m, sigma, position), (mu,), (direction,))[1]

        return jax.vmap(column)(jax.numpy.eye(HESSIAN_BLOCK, mu.size))

    return block


def measure(size: str, repeats: int, seed: int) -> list[dict]:
    import jax
    from pymc.sampling.jax import get_jaxified_logp

    import bayespref as bp
    from bayespref.model.builder import build_model

    simulation = simulate_size(size, seed)
    data = bp.load_choice_data(simulation.comparisons, simulation.tasks)
    n_tasks = len(simulation.tasks)
    rng = np.random.default_rng(seed)
    point = (rng.normal(size=n_tasks), np.exp(rng.normal(scale=0.3, size=n_tasks)), 0.3)
    calls = max(20, int(2e7 // len(data.cells)))
    rows = []
    for implementation in ("written out", "kernel"):
        likelihood = _likelihood_function(data, implementation)
        gradient = jax.jit(jax.value_and_grad(likelihood, argnums=(0, 1, 2)))
        hessian_block = jax.jit(_hessian_block(likelihood))
        rows.append(
            {
                "size": size,
                "cells": len(data.cells),
                "likelihood": implementation,
                "gradient_ms": _best_ms(gradient, point, calls, repeats),
                "hessian_block_ms": _best_ms(hessian_block, point, max(2, calls // 20), repeats),
            }
        )
    model = build_model(bp.resolve_spec(None), data)
    logp = get_jaxified_logp(model)
    values = [np.asarray(value) for value in model.initial_point().values()]
    model_gradient = jax.jit(jax.value_and_grad(lambda vs: logp(vs)))
    rows[-1]["model_gradient_ms"] = _best_ms(model_gradient, (values,), calls, repeats)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500x10000,10000x332000")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "gradient.csv"
    )
    args = parser.parse_args()
    import bayespref  # noqa: F401  (configures the CPU devices before JAX starts)

    rows = [row for size in args.sizes.split(",") for row in measure(size, args.repeats, args.seed)]
    table = pd.DataFrame(rows)
    written = table[table["likelihood"] == "written out"].set_index("size")
    kernel = table[table["likelihood"] == "kernel"].set_index("size")
    write_table(table, args.out)
    columns = ["gradient_ms", "hessian_block_ms"]
    speedup = written[columns] / kernel[columns]
    for size, ratios in speedup.iterrows():
        print(
            f"{size}: the kernel is {ratios['gradient_ms']:.2f}x as fast for a gradient and "
            f"{ratios['hessian_block_ms']:.2f}x for a block of Hessian columns"
        )


if __name__ == "__main__":
    main()
