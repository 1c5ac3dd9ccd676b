"""The model's variables (constrained, deterministics included) at rows of its unconstrained
values, as the samplers report them: one function compiled for chunks of a fixed number of rows,
so that blocks of draws of any size share one compilation, which may run ahead on a thread."""

from __future__ import annotations

from concurrent.futures import Executor, Future

import numpy as np

DRAW_CHUNK = 250  # rows per call: the last chunk is padded with copies of its last row


class VariablesAtDraws:
    """A compiled map from rows of unconstrained values (flat, as `unravel` reads them; `width`
    columns of `dtype`) to the model's variables at each row, shaped (1, row, ...). With `pool`,
    compilation starts there at once and the first call waits for it."""

    def __init__(self, model, unravel, width: int, dtype, pool: Executor | None = None) -> None:
        import jax
        from pymc.sampling.jax import get_jaxified_graph
        from pymc.util import get_default_varnames

        outputs = list(get_default_varnames(model.unobserved_value_vars, include_transformed=False))
        function = get_jaxified_graph(inputs=model.value_vars, outputs=outputs)
        self.names = [variable.name for variable in outputs]
        lowered = jax.jit(jax.vmap(lambda x: function(*unravel(x)))).lower(
            jax.ShapeDtypeStruct((DRAW_CHUNK, width), dtype)
        )
        if pool is None:
            self._executable: Future = Future()
            self._executable.set_result(lowered.compile())
        else:
            self._executable = pool.submit(lowered.compile)

    def __call__(self, unconstrained: np.ndarray) -> dict[str, np.ndarray]:
        executable = self._executable.result()
        chunks = []
        for start in range(0, len(unconstrained), DRAW_CHUNK):
            rows = unconstrained[start : start + DRAW_CHUNK]
            padding = np.repeat(rows[-1:], DRAW_CHUNK - len(rows), axis=0)
            values = executable(np.concatenate([rows, padding]))
            chunks.append([np.asarray(value)[: len(rows)] for value in values])
        return {
            name: np.concatenate([chunk[i] for chunk in chunks])[None]
            for i, name in enumerate(self.names)
        }


def model_variables(model, unconstrained: np.ndarray, unravel) -> dict[str, np.ndarray]:
    """The model's variables at each row of `unconstrained` (VariablesAtDraws, compiled here)."""
    width = unconstrained.shape[1]
    return VariablesAtDraws(model, unravel, width, unconstrained.dtype)(unconstrained)
