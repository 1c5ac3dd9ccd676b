"""How a posterior is computed: the sampler's settings and the arithmetic they imply."""

from __future__ import annotations

from dataclasses import dataclass

from bayespref.errors import FitError
from bayespref.inference import device

METHODS = ("nuts", "approx")
INITS = ("jitter", "laplace")
FIXED_DRAWS = 1000
# Drawing to the trust thresholds, a check after every 100 draws per chain stopped 500-task fits
# at 600-700 draws (benchmarks/run.py's `trusted`); blocks of 50 cost more in per-block overhead
# than they saved (ad hoc, 500 tasks), and blocks of 1,000 would draw past the target.
TRUSTED_BLOCK = 100


@dataclass(frozen=True)
class SamplerSettings:
    chains: int = 4
    # Per chain after tuning; with `until_trusted`, the size of each block. None: FIXED_DRAWS,
    # or TRUSTED_BLOCK with `until_trusted`.
    draws: int | None = None
    tune: int = 1000
    target_accept: float = 0.9
    seed: int = 0
    precision: str = "auto"  # float32 for NUTS, float64 for the approximation (_precision)
    # Where chains start: PyMC's jittered initial point, or draws from the Laplace approximation
    # with its variances as the initial inverse mass matrix (inference/warm_start.py).
    init: str = "jitter"
    # False: tuning adapts the step size only, keeping the initial mass matrix (the identity, or
    # the warm start's variances).
    adapt_mass_matrix: bool = True
    # Draw blocks of `draws` per chain until every reported quantity passes the trust thresholds
    # (checks/convergence.py), at most `max_draws` per chain.
    until_trusted: bool = False
    max_draws: int = 5000

    def __post_init__(self) -> None:
        # Frozen: set once, here. So dataclasses.replace(settings, until_trusted=True) keeps the
        # draws already set; pass draws=None with it for the block default.
        if self.draws is None:
            object.__setattr__(self, "draws", TRUSTED_BLOCK if self.until_trusted else FIXED_DRAWS)
        if self.chains < 1 or self.draws < 1 or self.tune < 0:
            raise FitError("chains and draws must be positive and tune non-negative")
        if not 0 < self.target_accept < 1:
            raise FitError("target_accept must be between 0 and 1")
        if self.init not in INITS:
            raise FitError(f"unknown init '{self.init}'; choose one of {', '.join(INITS)}")
        if self.until_trusted and self.max_draws < self.draws:
            raise FitError("max_draws must be at least draws (the first block)")
        if self.precision not in device.PRECISIONS:
            known = ", ".join(device.PRECISIONS)
            raise FitError(f"unknown precision '{self.precision}'; choose one of {known}")


def precision_of(settings: SamplerSettings, method: str) -> str:
    """The arithmetic of the fit. NUTS runs in float32 unless asked otherwise, on CPU as on an
    accelerator: it gives the float64 posterior 1.4 to 2.6 times faster (benchmarks/precision.py,
    every model term but the logit link checked). The Laplace approximation stays in float64: its
    optimizer and Cholesky factor need the digits."""
    if method == "nuts":
        return "float32" if settings.precision == "auto" else settings.precision
    if settings.precision == "float32":
        raise FitError("--method approx runs in float64 only; drop precision float32")
    return "float64"
