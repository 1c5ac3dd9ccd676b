from __future__ import annotations

import os
import subprocess
import sys
import threading

import pytest

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


def test_the_sampler_takes_what_vllm_leaves_of_one_gpu(monkeypatch):
    monkeypatch.delenv(device.PREALLOCATE, raising=False)
    monkeypatch.delenv(device.MEM_FRACTION, raising=False)
    assert device.leave_gpu_to(0.6) == 0.35
    assert os.environ[device.PREALLOCATE] == "false"
    assert os.environ[device.MEM_FRACTION] == "0.350"


def test_a_users_own_jax_memory_setting_wins(monkeypatch):
    monkeypatch.setenv(device.MEM_FRACTION, "0.2")
    monkeypatch.delenv(device.PREALLOCATE, raising=False)
    assert device.leave_gpu_to(0.6) is None
    assert os.environ[device.MEM_FRACTION] == "0.2" and device.PREALLOCATE not in os.environ


def test_vllm_taking_nearly_all_the_gpu_is_warned_about(monkeypatch):
    monkeypatch.delenv(device.PREALLOCATE, raising=False)
    monkeypatch.delenv(device.MEM_FRACTION, raising=False)
    with pytest.warns(RuntimeWarning, match="lower --gpu-memory-utilization"):
        assert device.leave_gpu_to(0.95) == device.GPU_MARGIN
