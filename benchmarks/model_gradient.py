"""What a gradient of a model's whole log density costs beside its likelihood kernel alone, as
NUTS runs it: 4 chains, one CPU device each, 500 gradients in one compiled loop.

The kernel alone (the cells' likelihood Op on given z and concentrations, model/likelihood.py) is
the floor in the same run; `ratio` is the model's time over it, so runs on noisy cores and on two
checkouts (`--label`, with PYTHONPATH set to each) compare. Designs: `conditions`
(benchmarks/conditions.py's, 13 conditions, 9,360 training cells; model `conditions`) and `real`
(the real set's comparisons, skipped with a message when absent; the default model).

Usage:
    python benchmarks/model_gradient.py [--designs conditions,real] [--label NAME]
        [--repeats 5] [--out benchmarks/results/model_gradient.csv]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
from conditions import argument_parser, simulate_conditions
from heldout import split_pairs
from real import HELD_OUT, REAL
from run import write_table

import bayespref as bp

CHAINS, STEPS = 4, 500


def conditions_data() -> tuple[str, bp.ChoiceData]:
    design = argument_parser().parse_args([])  # benchmarks/conditions.py's default design
    comparisons, tasks, _ = simulate_conditions(design, 0)
    train, _ = split_pairs(comparisons, HELD_OUT, 0, by=("condition",))
    return "conditions", bp.load_choice_data(train, tasks)


def real_data() -> tuple[str, bp.ChoiceData] | None:
    if not REAL.exists():
        print(f"skipping the real design: {REAL} is absent")
        return None
    train, _ = split_pairs(bp.read_comparisons(REAL), HELD_OUT, 0)
    return bp.resolve_spec(None).name, bp.load_choice_data(train)


def _seconds_per_step(gradient, start: np.ndarray, repeats: int) -> float:
    """Best over `repeats` of a compiled loop of STEPS gradient steps on every chain."""
    import jax

    def loop(x):
        return jax.lax.fori_loop(0, STEPS, lambda _, x: x + 1e-6 * gradient(x), x)

    run = jax.pmap(loop)
    chains = np.tile(start, (CHAINS, 1))
    jax.block_until_ready(run(chains))
    best = np.inf
    for _ in range(repeats):
        started = time.perf_counter()
        jax.block_until_ready(run(chains))
        best = min(best, time.perf_counter() - started)
    return best / STEPS


def measure(model_name: str, data: bp.ChoiceData, repeats: int) -> dict:
    import jax
    import pytensor.tensor as pt
    from jax.flatten_util import ravel_pytree
    from pymc.sampling.jax import get_jaxified_graph, get_jaxified_logp

    from bayespref.inference import device
    from bayespref.model.builder import build_model
    from bayespref.model.likelihood import beta_binomial_cells_logp, probit_binomial_logp
    from bayespref.model.repeats import BETA_BINOMIAL
    from bayespref.model.structure import model_cells

    spec = bp.resolve_spec(model_name)
    with device.floating_point("float32"):
        model = build_model(spec, data)
        logp = get_jaxified_logp(model)
        point = model.initial_point()
        flat, unravel = ravel_pytree([np.asarray(point[v.name]) for v in model.value_vars])
        model_seconds = _seconds_per_step(jax.grad(lambda x: logp(unravel(x))), flat, repeats)

        cells = model_cells(spec, data)
        k, n = cells["k"].to_numpy(), cells["n"].to_numpy()
        z, kappa = pt.vector("z"), pt.vector("kappa")
        if spec.overdispersion in BETA_BINOMIAL:
            cell_logp = beta_binomial_cells_logp(z, kappa, k, n, int(n.max()))
        else:
            cell_logp = probit_binomial_logp(z, k, n) + 0.0 * kappa.sum()
        kernel = get_jaxified_graph(inputs=[z, kappa], outputs=[cell_logp.sum()])
        size = len(cells)
        rng = np.random.default_rng(0)
        start = np.concatenate([rng.normal(size=size), np.full(size, 2.0)]).astype(np.float32)
        kernel_seconds = _seconds_per_step(
            jax.grad(lambda x: kernel(x[:size], x[size:])[0]), start, repeats
        )
    return {
        "model": spec.name,
        "cells": size,
        "coordinates": flat.size,
        "kernel_ms": kernel_seconds * 1e3,
        "model_ms": model_seconds * 1e3,
        "ratio": model_seconds / kernel_seconds,
    }


DESIGNS = {"conditions": conditions_data, "real": real_data}


def designs(text: str) -> list[str]:
    names = text.split(",")
    unknown = sorted(set(names) - set(DESIGNS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown design {', '.join(unknown)}: choose from {', '.join(DESIGNS)}"
        )
    return names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--designs", type=designs, default=["conditions", "real"], help="conditions, real"
    )
    parser.add_argument("--label", default="this checkout")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).parent / "results" / "model_gradient.csv"
    )
    args = parser.parse_args()
    rows = []
    for design in args.designs:
        made = DESIGNS[design]()
        if made is not None:
            model_name, data = made
            rows.append(
                {"label": args.label, "design": design} | measure(model_name, data, args.repeats)
            )
            print(pd.DataFrame(rows).tail(1).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    if args.out.exists():
        table = pd.concat([pd.read_csv(args.out), table], ignore_index=True)
    write_table(table, args.out)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))


if __name__ == "__main__":
    main()
