"""The choice likelihood of a cell as one PyTensor Op: probit binomial cells, k ~ Binomial(n,
Phi(z)), and beta-binomial cells, k ~ BetaBinomial(n, kappa Phi(z), kappa Phi(-z)), each without
its binomial coefficient.

Every backend but JAX (C for PyMC's sampler, Numba for nutpie) inlines an Op's symbolic graph
before any other rewrite, and differentiates the written-out graph, so it compiles exactly what it
would compile without the Op. The JAX backend (NumPyro NUTS and the Laplace approximation) runs a
fused kernel instead, with a hand-written derivative: automatic differentiation of log Phi(z) and
log Phi(-z) evaluates erfc, exp and log per side and again for the derivatives, while the kernel
evaluates one erfc, two exp and two log per cell for the values and derivatives of both sides.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytensor
import pytensor.tensor as pt
from jax.scipy.special import erfc
from pytensor.compile import optdb
from pytensor.compile.rewriting import inline_ofg_node
from pytensor.gradient import grad_undefined
from pytensor.graph.rewriting.basic import dfs_rewriter, get_active_mode, node_rewriter
from pytensor.link.jax.dispatch import jax_funcify
from pytensor.link.jax.linker import JAXLinker
from pytensor.tensor.symbolic import FusibleSymbolicOp

# Below this z the asymptotic series of log Phi replaces log(erfc/2); both are accurate there.
_LOG_PHI_SWITCH = -10.0
# Python floats, not NumPy's: JAX keeps a float32 kernel in float32 only with weak constants.
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
_SQRT_2 = math.sqrt(2.0)
_SQRT_2PI = math.sqrt(2.0 * math.pi)
# The kernel uses erfc up to |z| = 37, where it is still a normal float64 (about 1e-300), and
# the asymptotic series of the Mills ratio beyond, whose first omitted term is below 1e-12 there;
# in float32 (floatX=float32) up to |z| = 9, where that term is 3e-7, about float32's precision.
_KERNEL_SWITCH = {np.dtype(np.float64): 37.0, np.dtype(np.float32): 9.0}


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


# Up to this many repeats a beta-binomial cell's rising factorials are products of their factors,
# which JAX evaluates and differentiates twice as fast as log-gamma and digamma (real set).
SUMMED_REPEATS = 16


def _log_rising(count, log_alpha, alpha, max_count: int | None):
    """log of alpha (alpha + 1) ... (alpha + count - 1), the ratio Gamma(count + alpha) /
    Gamma(alpha), with log alpha given so that a tiny alpha (a near-certain cell's unlikely side)
    keeps its precision: Gamma(alpha) itself is near 1 / alpha."""
    if max_count is not None and max_count <= SUMMED_REPEATS:
        # Factors (each at least 1) multiplied in fours before one log: below float32's overflow
        # for kappa < 1e9.
        total = pt.switch(count > 0, log_alpha, 0.0)
        for start in range(1, max_count, 4):
            factors = [
                pt.switch(count > j, alpha + j, 1.0)
                for j in range(start, min(start + 4, max_count))
            ]
            total = total + pt.log(pt.prod(pt.stack(factors), axis=0, no_zeros_in_input=True))
        return total
    # Both branches of a switch are evaluated and differentiated: with count 0 and alpha
    # underflowed to 0, Gamma(count + alpha) is infinite in the unused one. Written so, fits of
    # the real set failed (r_hat 9.5, 904 of 1,200 transitions divergent); at_least_one keeps
    # that branch finite. A small graph alone does not show the failure.
    at_least_one = pt.maximum(count, 1)
    written = log_alpha + pt.gammaln(at_least_one + alpha) - pt.gammaln(1.0 + alpha)
    return pt.switch(count > 0, written, 0.0)


def _beta_binomial_written_out(z, concentration, k, n, max_count: int | None):
    """log BetaBinomial(k | n, kappa Phi(z), kappa Phi(-z)) less its coefficient, both sides from
    log Phi so that neither underflows in the far tails."""
    log_first, log_second = log_phi(z), log_phi(-z)
    log_kappa = pt.log(concentration)
    first = _log_rising(k, log_kappa + log_first, concentration * pt.exp(log_first), max_count)
    second = _log_rising(
        n - k, log_kappa + log_second, concentration * pt.exp(log_second), max_count
    )
    return first + second - _log_rising(n, log_kappa, concentration, max_count)


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


class BetaBinomialLogp(FusibleSymbolicOp):
    """Per cell: log BetaBinomial(k | n, kappa Phi(z), kappa Phi(-z)) less its coefficient, for
    cells of at most `max_count` trials."""

    __props__ = ("max_count",)

    def build_inner_graph(self, z, concentration, k, n):
        return [_beta_binomial_written_out(z, concentration, k, n, self.max_count)]

    def pullback(self, inputs, outputs, output_grads):
        """The gradient of the written-out graph; counts have none."""
        z, concentration, k, n = inputs
        written_out = self.build_inner_graph(z, concentration, k, n)[0]
        dz, dconcentration = pytensor.grad(
            None, wrt=[z, concentration], known_grads={written_out: output_grads[0]}
        )
        return [dz, dconcentration, grad_undefined(self, 2, k), grad_undefined(self, 3, n)]


@node_rewriter([ProbitBinomialLogp, BetaBinomialLogp])
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


def beta_binomial_cells_logp(z, concentration, k, n, max_count: int | None):
    """log BetaBinomial(k | n, kappa Phi(z), kappa Phi(-z)) less its coefficient, elementwise over
    cells: one Op for cells of at most SUMMED_REPEATS trials, else written out with log-gamma."""
    if max_count is None or max_count > SUMMED_REPEATS:
        return _beta_binomial_written_out(z, concentration, k, n, None)
    return BetaBinomialLogp(max_count=max_count)(z, concentration, k, n)


def _sides(z):
    """With x = |z|: log Phi(-x), log Phi(x), m(-x), m(x) with m = phi / Phi, and m(-x) - x.

    The side of the smaller probability goes through the Mills ratio R(x) = Phi(-x) / phi(x), so
    that nothing underflows; beyond the switch R is its asymptotic series. Nothing here is
    differentiated: the derivatives are the closed forms below."""
    x = jnp.abs(z)
    switch = _KERNEL_SWITCH[np.dtype(x.dtype)]
    beyond = x > switch
    near = jnp.minimum(x, switch)
    far = jnp.maximum(x, switch)
    tail = erfc(near / _SQRT_2) / 2.0  # Phi(-x), for x up to the switch
    inverse_square = 1.0 / (far * far)
    correction = inverse_square * (
        1.0 - inverse_square * (3.0 - inverse_square * (15.0 - 105.0 * inverse_square))
    )
    series = 1.0 - correction  # x R(x) beyond the switch
    mills = jnp.where(beyond, series / far, tail * jnp.exp(0.5 * near * near) * _SQRT_2PI)
    half_square = 0.5 * x * x
    log_small = -half_square - _HALF_LOG_2PI + jnp.log(mills)
    log_large = jnp.log1p(-tail)
    slope_small = 1.0 / mills
    slope_large = jnp.exp(-half_square - _HALF_LOG_2PI) / (1.0 - tail)
    # 1/R(x) - x cancels for large x; the series gives it directly.
    excess = jnp.where(beyond, far * correction / series, slope_small - x)
    return log_small, log_large, slope_small, slope_large, excess


def _counts_by_side(z, k, n):
    """Trials whose outcome had probability Phi(|z|), and the others."""
    n_large = jnp.where(z >= 0, k, n - k)
    return n_large, n - n_large


def _value_and_slope(z, k, n):
    """k log Phi(z) + (n - k) log Phi(-z), and its derivative k m(z) - (n - k) m(-z)."""
    log_small, log_large, slope_small, slope_large, _ = _sides(z)
    n_large, n_small = _counts_by_side(z, k, n)
    value = n_large * log_large + n_small * log_small
    slope = jnp.where(z >= 0, 1.0, -1.0) * (n_large * slope_large - n_small * slope_small)
    return value, slope


@jax.custom_jvp
def probit_binomial_slope(z, k, n):
    """JAX: d/dz of the cells' log-likelihood, with its own derivative in closed form."""
    return _value_and_slope(z, k, n)[1]


@probit_binomial_slope.defjvp
def _slope_derivative(primals, tangents):
    z, k, n = primals
    _, _, slope_small, slope_large, excess = _sides(z)
    n_large, n_small = _counts_by_side(z, k, n)
    # m'(z) = -m(z) (z + m(z)); on both sides of z this is the same in |z|.
    curvature = -n_large * slope_large * (slope_large + jnp.abs(z)) - n_small * slope_small * excess
    return probit_binomial_slope(z, k, n), curvature * tangents[0]  # k and n are data


@jax.custom_jvp
def probit_binomial_cells(z, k, n):
    """JAX: the cells' log-likelihood k log Phi(z) + (n - k) log Phi(-z), with derivatives in
    closed form: a Hessian-vector product (the Laplace approximation's Hessian) costs one
    multiplication per cell beyond them."""
    return _value_and_slope(z, k, n)[0]


@probit_binomial_cells.defjvp
def _cells_derivative(primals, tangents):
    z, k, n = primals
    # Both calls trace _sides, and XLA merges the two into one evaluation; the slope must be the
    # custom_jvp function so that its own derivative stays in closed form.
    value = probit_binomial_cells(z, k, n)
    return value, probit_binomial_slope(z, k, n) * tangents[0]  # k and n are data


@jax_funcify.register(ProbitBinomialLogp)
def _jax_probit_binomial_logp(op, **kwargs):
    return probit_binomial_cells


def _rising_blocks(count, x, max_count: int):
    """Over the factors x + j, j = 1 .. count - 1, in blocks of four: the sum of their logs and
    of their reciprocals (the log's derivative), one log and one division per block. Factors are
    at least 1, so four of them stay below float32's overflow for x < 1e9."""
    log_total, reciprocal_total = 0.0, 0.0
    for start in range(1, max_count, 4):
        product, derivative = 1.0, 0.0
        for j in range(start, min(start + 4, max_count)):
            counted = count > j
            factor = jnp.where(counted, x + j, 1.0)
            derivative = derivative * factor + jnp.where(counted, product, 0.0)
            product = product * factor
        log_total = log_total + jnp.log(product)
        reciprocal_total = reciprocal_total + derivative / product
    return log_total, reciprocal_total


def _beta_binomial_terms(z, kappa, k, n, max_count: int):
    """A beta-binomial cell's log-probability (less its coefficient) and its derivatives in z and
    kappa. With P = Phi(z), a = kappa P, b = kappa (1 - P): each rising factorial's first factor
    is written through log P and the ratio phi / P, so that a near-certain cell's unlikely side
    keeps its precision, the others as blocks of products of a + j."""
    log_small, log_large, slope_small, slope_large, _ = _sides(z)
    positive = z >= 0
    log_p = jnp.where(positive, log_large, log_small)
    log_q = jnp.where(positive, log_small, log_large)
    ratio_p = jnp.where(positive, slope_large, slope_small)  # phi(z) / Phi(z)
    ratio_q = jnp.where(positive, slope_small, slope_large)  # phi(z) / Phi(-z)
    p, q = jnp.exp(log_p), jnp.exp(log_q)
    has_first, has_second, has_any = k > 0, n - k > 0, n > 0
    log_kappa = jnp.log(kappa)
    value = jnp.where(has_first, log_kappa + log_p, 0.0)
    value = value + jnp.where(has_second, log_kappa + log_q, 0.0)
    value = value - jnp.where(has_any, log_kappa, 0.0)
    slope = jnp.where(has_first, ratio_p, 0.0) - jnp.where(has_second, ratio_q, 0.0)
    counted = has_first.astype(z.dtype) + has_second.astype(z.dtype) - has_any.astype(z.dtype)
    log_first, first = _rising_blocks(k, kappa * p, max_count)
    log_second, second = _rising_blocks(n - k, kappa * q, max_count)
    log_total, total = _rising_blocks(n, kappa, max_count)
    value = value + log_first + log_second - log_total
    slope = slope + kappa * ratio_p * p * (first - second)
    by_kappa = counted / kappa + p * first + q * second - total
    return value, slope, by_kappa


@jax_funcify.register(BetaBinomialLogp)
def _jax_beta_binomial_logp(op, **kwargs):
    max_count = op.max_count

    @jax.custom_jvp
    def cells(z, kappa, k, n):
        return _beta_binomial_terms(z, kappa, k, n, max_count)[0]

    @cells.defjvp
    def _derivative(primals, tangents):
        z, kappa, k, n = primals
        value, slope, by_kappa = _beta_binomial_terms(z, kappa, k, n, max_count)
        return value, slope * tangents[0] + by_kappa * tangents[1]  # k and n are data

    return cells
