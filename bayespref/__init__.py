"""bayespref: what an LLM prefers to do, as hierarchical Bayesian Thurstonian utilities.

The public API is imported lazily, so `import bayespref` and the CLI start fast.
"""

from importlib import import_module

from bayespref.device import configure_host_devices

configure_host_devices()

__version__ = "0.1.0"

_API = {
    "DataError": "bayespref.data",
    "DataWarning": "bayespref.data",
    "load_choice_data": "bayespref.data",
    "read_comparisons": "bayespref.data",
    "Fit": "bayespref.fit",
    "FitError": "bayespref.fit",
    "SamplerSettings": "bayespref.fit",
    "fit": "bayespref.fit",
    "load_fit": "bayespref.fit",
    "predict": "bayespref.predict",
    "SimulationConfig": "bayespref.simulate",
    "simulate": "bayespref.simulate",
    "write_simulation": "bayespref.simulate",
    "ModelSpec": "bayespref.spec",
    "SpecError": "bayespref.spec",
    "resolve_spec": "bayespref.spec",
}
__all__ = sorted(_API)


def __getattr__(name: str):
    if name in _API:
        return getattr(import_module(_API[name]), name)
    raise AttributeError(f"module 'bayespref' has no attribute {name!r}")
