"""Where JAX runs the chains: parallel CPU devices, or vectorized chains on one accelerator."""

from __future__ import annotations

import os
import sys

HOST_DEVICES = max(4, os.cpu_count() or 1)


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
