"""How the transformers engine loads a model, against a stand-in `transformers` module with the
real signatures (`from_pretrained(source, dtype=..., device_map=..., gguf_file=...)`,
`apply_chat_template(conversation, add_generation_prompt=..., tokenize=...)`). Needs torch, which
the engine uses for the dtype; skipped without it."""

from __future__ import annotations

import sys
import types

import pytest

torch = pytest.importorskip("torch")

from bayespref.collect.engines import EngineOptions, Generation, make_engine  # noqa: E402


def fake_transformers(loaded: list, system_role: bool = True) -> types.ModuleType:
    module = types.ModuleType("transformers")

    class Tokenizer:
        pad_token, eos_token, padding_side = None, "</s>", "right"

        def apply_chat_template(
            self, conversation, add_generation_prompt=False, tokenize=True, **kwargs
        ):
            if not system_role and conversation[0]["role"] == "system":
                raise ValueError("System role not supported")
            return "".join(f"<{m['role']}>{m['content']}" for m in conversation)

    class AutoTokenizer:
        @staticmethod
        def from_pretrained(source, **kwargs):
            return Tokenizer()

    class Model:
        generation_config = types.SimpleNamespace(eos_token_id=[2, 7])
        device = "cpu"

        def eval(self):
            return self

    class AutoModelForCausalLM:
        @staticmethod
        def from_pretrained(source, *, dtype=None, device_map=None, **kwargs):
            loaded.append({"source": source, "dtype": dtype, "device_map": device_map, **kwargs})
            return Model()

    module.AutoTokenizer, module.AutoModelForCausalLM = AutoTokenizer, AutoModelForCausalLM
    return module


@pytest.mark.parametrize(
    ("cuda", "device", "dtype", "expected_dtype", "expected_map"),
    [
        (True, None, None, torch.bfloat16, "auto"),  # a 27B model: bf16, spread by accelerate
        (False, None, None, torch.float32, "auto"),
        (True, "cpu", None, torch.float32, "cpu"),
        (False, "cuda:1", None, torch.bfloat16, "cuda:1"),
        (True, None, "float16", torch.float16, "auto"),
        (False, None, "auto", "auto", "auto"),
    ],
)
def test_dtype_and_device_map(monkeypatch, cuda, device, dtype, expected_dtype, expected_map):
    loaded: list = []
    monkeypatch.setitem(sys.modules, "transformers", fake_transformers(loaded))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    options = EngineOptions(device=device, dtype=dtype)
    engine = make_engine("transformers", "org/model-27b", Generation(), options)
    assert loaded == [
        {"source": "org/model-27b", "dtype": expected_dtype, "device_map": expected_map}
    ]
    assert engine.tokenizer.padding_side == "left" and engine.tokenizer.pad_token == "</s>"
    assert engine.stop_ids == {2, 7} and not engine.folds_system


def test_gguf_files_and_templates_without_a_system_role(monkeypatch, tmp_path):
    loaded: list = []
    monkeypatch.setitem(sys.modules, "transformers", fake_transformers(loaded, system_role=False))
    gguf = tmp_path / "model.Q4.gguf"
    engine = make_engine("transformers", str(gguf), Generation(), EngineOptions(device="cpu"))
    assert loaded[0]["source"] == str(tmp_path) and loaded[0]["gguf_file"] == "model.Q4.gguf"
    assert engine.folds_system


def test_bad_settings_are_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", fake_transformers([]))
    with pytest.raises(ValueError, match="unknown dtype 'fp64'"):
        make_engine("transformers", "m", Generation(), EngineOptions(dtype="fp64"))
    with pytest.raises(ValueError, match="batch size must be at least 1"):
        make_engine("transformers", "m", Generation(), EngineOptions(micro_batch=0))
