from __future__ import annotations

import os
import subprocess
import sys
import threading

from bayespref.inference import device


def _run(code: str) -> subprocess.CompletedProcess:
    # Without XLA_FLAGS: importing pymc.sampling.jax (as earlier tests do) sets a device count
    # there, which bayespref leaves alone, as it would a user's.
    env = {name: value for name, value in os.environ.items() if name != "XLA_FLAGS"}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )


def test_chains_get_parallel_devices_when_jax_was_imported_first():
    # arviz imports JAX: its device count used to be fixed before bayespref could set it.
    done = _run("import arviz, bayespref, jax; print(len(jax.devices()))")
    assert done.stdout.split() == [str(device.HOST_DEVICES)]


def test_jax_that_already_ran_is_reported():
    done = _run("import jax; jax.devices(); import bayespref; print(len(jax.devices()))")
    assert done.stdout.split() == ["1"]
    assert "JAX ran before bayespref was imported" in done.stderr


def test_floating_point_switches_x64_for_every_thread_and_restores_it():
    import jax

    before = jax.config.read("jax_enable_x64")
    seen = []
    for x64_outside in (True, False):
        jax.config.update("jax_enable_x64", x64_outside)
        for precision in ("float32", "float64"):
            with device.floating_point(precision):
                worker = threading.Thread(target=lambda: seen.append(jax.numpy.array(1).dtype))
                worker.start()
                worker.join()
            assert jax.config.read("jax_enable_x64") == x64_outside
    jax.config.update("jax_enable_x64", before)
    assert [dtype.name for dtype in seen] == ["int32", "int64"] * 2
