"""bayespref: what an LLM prefers to do, as hierarchical Bayesian Thurstonian utilities."""

from bayespref.device import configure_host_devices

configure_host_devices()

# Eager imports: the functions fit/predict/simulate share their modules' names, and a lazily
# imported submodule would shadow the function of the same name on the package.
from bayespref.data import DataError, DataWarning, load_choice_data, read_comparisons  # noqa: E402
from bayespref.fit import Fit, FitError, SamplerSettings, fit, load_fit  # noqa: E402
from bayespref.predict import predict  # noqa: E402
from bayespref.simulate import SimulationConfig, simulate, write_simulation  # noqa: E402
from bayespref.spec import ModelSpec, SpecError, resolve_spec  # noqa: E402

__version__ = "0.1.0"
__all__ = [
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
