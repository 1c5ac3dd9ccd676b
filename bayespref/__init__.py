"""bayespref: what an LLM prefers to do, as hierarchical Bayesian Thurstonian utilities.

The layers, from the bottom (docs/architecture.md): errors, io, data, model, posterior,
inference and collect, analysis, checks, report, workflows, cli. A module imports only from
layers below its own (tests/test_architecture.py).
"""

from bayespref.inference.device import configure_host_devices

# Before JAX's first operation, so that CPU chains can run in parallel (inference/device.py).
configure_host_devices()

from bayespref.analysis.prediction import predict  # noqa: E402
from bayespref.data.choice_data import load_choice_data  # noqa: E402
from bayespref.data.comparisons import read_comparisons  # noqa: E402
from bayespref.data.simulation import SimulationConfig, simulate, write_simulation  # noqa: E402
from bayespref.errors import (  # noqa: E402
    BayesprefError,
    CollectError,
    DataError,
    DataWarning,
    FitError,
    SpecError,
)
from bayespref.inference.settings import SamplerSettings  # noqa: E402
from bayespref.model.spec import ModelSpec, resolve_spec  # noqa: E402
from bayespref.posterior.fit import Fit, load_fit  # noqa: E402
from bayespref.workflows.fitting import fit  # noqa: E402

__version__ = "0.1.0"
__all__ = [
    "BayesprefError",
    "CollectError",
    "DataError",
    "DataWarning",
    "Fit",
    "FitError",
    "ModelSpec",
    "SamplerSettings",
    "SimulationConfig",
    "SpecError",
    "fit",
    "load_choice_data",
    "load_fit",
    "predict",
    "read_comparisons",
    "resolve_spec",
    "simulate",
    "write_simulation",
]
