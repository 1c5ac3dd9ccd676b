"""Where JAX runs the chains (parallel CPU devices, or vectorized chains on one accelerator), and
in which floating-point precision."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

HOST_DEVICES = max(4, os.cpu_count() or 1)
PRECISIONS = ("auto", "float64", "float32")


def configure_host_devices(count: int = HOST_DEVICES) -> None:
    """Expose `count` CPU devices to XLA so chains run in parallel on CPU.

    XLA reads the flag once, when JAX starts, so this must run before anything imports JAX.
    """
    if "jax" in sys.modules:
        return
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_force_host_platform_device_count" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} --xla_force_host_platform_device_count={count}".strip()


def chain_method(chains: int) -> str:
    """'parallel' when there is a device per chain, else 'vectorized' (e.g. one GPU)."""
    import jax

    return "parallel" if len(jax.devices()) >= chains else "vectorized"


def describe() -> str:
    import jax

    devices = jax.devices()
    return f"{devices[0].platform}:{devices[0].device_kind} x{len(devices)}"


def resolve_precision(precision: str) -> str:
    """'auto' is float32 on an accelerator, whose float64 arithmetic is many times slower, and
    float64 on CPU."""
    import jax

    if precision != "auto":
        return precision
    return "float64" if jax.default_backend() == "cpu" else "float32"


@contextmanager
def floating_point(precision: str) -> Iterator[None]:
    """Build and run models in `precision` ('float64' or 'float32'): PyTensor's floatX and JAX's
    x64 switch together. In float32 JAX keeps integer data in int32 and float64 constants in
    float32, and says so in a warning each time; that is the intended behaviour here."""
    import jax
    import pytensor

    with (
        pytensor.config.change_flags(floatX=precision),
        jax.enable_x64(precision == "float64"),
        warnings.catch_warnings(),
    ):
        warnings.filterwarnings("ignore", "Explicitly requested dtype", UserWarning)
        yield
