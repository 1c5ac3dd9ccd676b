"""Where JAX runs the chains (parallel CPU devices, or vectorized chains on one accelerator), and
in which floating-point precision."""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

HOST_DEVICES = max(4, os.cpu_count() or 1)
PRECISIONS = ("auto", "float64", "float32")


def configure_host_devices(count: int = HOST_DEVICES) -> None:
    """Expose `count` CPU devices to XLA so chains run in parallel on CPU.

    JAX reads this when it creates its backends, at its first operation, not at import: it works
    when another package has imported JAX already (arviz does). A device count the user set in
    XLA_FLAGS wins. If JAX has run already, chains share one device, and a warning says so."""
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return
    import jax

    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:
        warnings.warn(
            "JAX ran before bayespref was imported, so it has one CPU device: chains will run "
            "vectorized on it, about half as fast. Import bayespref before running JAX code.",
            RuntimeWarning,
            stacklevel=2,
        )


# JAX's GPU memory settings; read when its backend starts (the first computation).
PREALLOCATE, MEM_FRACTION = "XLA_PYTHON_CLIENT_PREALLOCATE", "XLA_PYTHON_CLIENT_MEM_FRACTION"
GPU_MARGIN = 0.05  # of the GPU, left to the CUDA contexts of both users


def leave_gpu_to(share: float) -> float | None:
    """Let JAX share one GPU with another user (vLLM) that holds `share` of its memory: no
    preallocation (by default JAX takes 75% at its first computation) and a cap on what is left,
    less a margin. Settings the user made win; returns the cap set, or None. Takes effect only
    before JAX's first computation in the process (a `collect --active` run starts with it)."""
    if PREALLOCATE in os.environ or MEM_FRACTION in os.environ:
        return None
    cap = round(1.0 - share - GPU_MARGIN, 3)
    if cap < GPU_MARGIN:
        warnings.warn(
            f"vLLM takes {share:.0%} of the GPU, which leaves the sampler {max(cap, 0):.0%}: "
            "lower --gpu-memory-utilization (0.6 leaves it 35%)",
            RuntimeWarning,
            stacklevel=2,
        )
        cap = GPU_MARGIN
    os.environ[PREALLOCATE] = "false"
    os.environ[MEM_FRACTION] = f"{cap:.3f}"
    return cap


def chain_method(chains: int) -> str:
    """'parallel' when there is a device per chain, else 'vectorized' (e.g. one GPU)."""
    import jax

    return "parallel" if len(jax.devices()) >= chains else "vectorized"


def describe() -> str:
    import jax

    devices = jax.devices()
    return f"{devices[0].platform}:{devices[0].device_kind} x{len(devices)}"


@contextmanager
def floating_point(precision: str) -> Iterator[None]:
    """Build and run models in `precision` ('float64' or 'float32'): PyTensor's floatX and JAX's
    x64 switch together. x64 is switched globally, not with JAX's thread-local context, so that
    anything JAX runs on another thread (callbacks) agrees on integer widths. In
    float32 JAX keeps integer data in int32 and float64 constants in float32, and says so in a
    warning each time; that is the intended behaviour here."""
    import jax
    import pytensor

    x64_before = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", precision == "float64")
    try:
        with pytensor.config.change_flags(floatX=precision), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Explicitly requested dtype", UserWarning)
            yield
    finally:
        jax.config.update("jax_enable_x64", x64_before)
