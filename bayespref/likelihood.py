"""The probit choice likelihood of a cell, k ~ Binomial(n, Phi(z)) without its binomial
coefficient, as one PyTensor Op.

Every backend but JAX (C for PyMC's sampler, Numba for nutpie) inlines the Op's symbolic graph
before any other rewrite, and differentiates the written-out graph, so it compiles exactly what it
would compile without the Op. The JAX backend (NumPyro NUTS and the Laplace approximation) runs a
fused kernel instead, with a hand-written derivative: automatic differentiation of log Phi(z) and
log Phi(-z) evaluates erfc, exp and log per side and again for the derivatives, while the kernel
evaluates one erfc and one exp per cell for the values and derivatives of both sides.
"""

from __future__ import annotations

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.compile.rewriting import inline_ofg_node
from pytensor.gradient import grad_undefined
from pytensor.graph.rewriting.basic import dfs_rewriter, get_active_mode, node_rewriter
from pytensor.link.jax.dispatch import jax_funcify
from pytensor.link.jax.linker import JAXLinker
from pytensor.tensor.symbolic import FusibleSymbolicOp

# Below this z the asymptotic series of log Phi replaces log(erfc/2); both are accurate there.
_LOG_PHI_SWITCH = -10.0
_HALF_LOG_2PI = 0.5 * np.log(2 * np.pi)
# The kernel uses erfc up to |z| = 37, where it is still a normal float64 (about 1e-300), and
# the asymptotic series of the Mills ratio beyond, whose first omitted term is below 1e-12 there.
_KERNEL_SWITCH = 37.0


def log_phi(z: pt.TensorLike) -> pt.TensorVariable:
    """log Phi(z), finite with finite gradients for any z, and JAX-compatible (no erfcx)."""
    z = pt.as_tensor_variable(z)
    upper = pt.maximum(z, _LOG_PHI_SWITCH)
    lower = pt.minimum(z, _LOG_PHI_SWITCH)
    direct = pt.log(pt.erfc(-upper / np.sqrt(2.0)) / 2.0)
    inverse_square = 1.0 / lower**2
    asymptotic = (
        -0.5 * lower**2
        - pt.log(-lower)
        - _HALF_LOG_2PI
        + pt.log1p(-inverse_square + 3.0 * inverse_square**2 - 15.0 * inverse_square**3)
    )
    return pt.switch(z < _LOG_PHI_SWITCH, asymptotic, direct)


class ProbitBinomialLogp(FusibleSymbolicOp):
    """Per cell: k log Phi(z) + (n - k) log Phi(-z)."""

    def build_inner_graph(self, z, k, n):
        return [k * log_phi(z) + (n - k) * log_phi(-z)]

    def pullback(self, inputs, outputs, output_grads):
        """The gradient of the written-out graph; counts have none."""
        z, k, n = inputs
        written_out = self.build_inner_graph(z, k, n)[0]
        dz = pytensor.grad(None, wrt=z, known_grads={written_out: output_grads[0]})
        return [dz, grad_undefined(self, 1, k), grad_undefined(self, 2, n)]


@node_rewriter([ProbitBinomialLogp])
def _inline_outside_jax(fgraph, node):
    if isinstance(get_active_mode(fgraph).linker, JAXLinker):
        return False
    return inline_ofg_node(node)


# Before every other rewrite, as PyTensor's own inlining of OpFromGraph runs (position -0.01).
optdb.register(
    "inline_probit_binomial_logp",
    dfs_rewriter(_inline_outside_jax),
    "fast_compile",
    "fast_run",
    position=-0.005,
)


def probit_binomial_logp(z, k, n) -> pt.TensorVariable:
    """k log Phi(z) + (n - k) log Phi(-z), elementwise over cells (z, k and n of one shape)."""
    return ProbitBinomialLogp()(z, k, n)


def probit_binomial_terms(z, k, n):
    """JAX: the cells' log-likelihood k log Phi(z) + (n - k) log Phi(-z) and its derivative in z,
    k m(z) - (n - k) m(-z) with m = phi / Phi, from one erfc and one exp per cell.

    With x = |z|, the side of the smaller probability is computed through the Mills ratio
    R(x) = Phi(-x) / phi(x), so that neither side underflows; differentiable twice (the Laplace
    approximation differentiates the derivative)."""
    import jax.numpy as jnp
    from jax.scipy.special import erfc

    x = jnp.abs(z)
    beyond = x > _KERNEL_SWITCH
    # where, not minimum/maximum: at the switch the derivative must go all to one side.
    near = jnp.where(beyond, _KERNEL_SWITCH, x)
    far = jnp.where(beyond, x, _KERNEL_SWITCH)
    tail = erfc(near / np.sqrt(2.0)) / 2.0  # Phi(-x), for x up to the switch
    inverse_square = 1.0 / (far * far)
    series = 1.0 - inverse_square * (
        1.0 - inverse_square * (3.0 - inverse_square * (15.0 - 105.0 * inverse_square))
    )
    mills = jnp.where(
        beyond, series / far, tail * jnp.exp(0.5 * near * near) * np.sqrt(2.0 * np.pi)
    )
    half_square = 0.5 * x * x
    log_small = -half_square - _HALF_LOG_2PI + jnp.log(mills)  # log Phi(-x)
    log_large = jnp.log1p(-tail)  # log Phi(x)
    slope_small = 1.0 / mills  # m(-x)
    slope_large = jnp.exp(-half_square - _HALF_LOG_2PI) / (1.0 - tail)  # m(x)
    positive = z >= 0
    n_large = jnp.where(positive, k, n - k)  # trials whose outcome had probability Phi(x)
    n_small = n - n_large
    value = n_large * log_large + n_small * log_small
    slope = jnp.where(positive, 1.0, -1.0) * (n_large * slope_large - n_small * slope_small)
    return value, slope


@jax_funcify.register(ProbitBinomialLogp)
def _jax_probit_binomial_logp(op, **kwargs):
    import jax

    @jax.custom_jvp
    def cells_logp(z, k, n):
        return probit_binomial_terms(z, k, n)[0]

    @cells_logp.defjvp
    def _derivative(primals, tangents):
        z, k, n = primals
        value, slope = probit_binomial_terms(z, k, n)
        return value, slope * tangents[0]  # k and n are data: no tangent flows through them

    return cells_logp
