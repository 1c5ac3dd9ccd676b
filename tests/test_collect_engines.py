from __future__ import annotations

import json
import math
import sys
import types
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import typer
from scipy.special import expit, ndtr
from typer.testing import CliRunner

from bayespref.cli.app import guarded
from bayespref.cli.collect import collect_command
from bayespref.collect.engines import (
    EngineOptions,
    Generation,
    Request,
    VllmSettings,
    make_engine,
)
from bayespref.collect.engines.base import label_probability
from bayespref.collect.engines.simulated import SimulatedEngine
from bayespref.collect.parse import parse_choice
from bayespref.collect.templates import load_template
from bayespref.data.tasks import load_shipped
from bayespref.errors import CollectError

PRE = load_template("pre-task-revealed")
DECLINED = set(load_shipped(["decline"])["prompt"])
app = typer.Typer()
app.command()(guarded(collect_command))  # through the one error path, as registered


def request(first: str, second: str, seed: int = 0, template=PRE) -> Request:
    messages = ({"role": "user", "content": template.render(first, second)},)
    return Request(f"{first}-{second}-{seed}", messages, seed, (first, second), template)


# --- label probabilities from token logprobs --------------------------------------------------


def test_label_probability_reads_the_first_label_token_in_both_forms():
    sampled = ["**", "Task", " A", ":**"]
    steps = [
        [("**", -0.1)],
        [("Task", -0.01)],
        [(" A", math.log(0.5)), ("A", math.log(0.1)), (" B", math.log(0.3)), (" C", -1.0)],
        [(":**", -0.2)],
    ]
    p_a, mass = label_probability(sampled, steps, ("A", "B"))
    assert p_a == pytest.approx(0.6 / 0.9) and mass == pytest.approx(0.9)
    assert label_probability(["Sure", "!"], steps[:2], ("A", "B")) == (None, None)


# --- simulated engine ---------------------------------------------------------------------------


TRUTH = pd.DataFrame(
    {
        "task_id": ["x", "y", "z"],
        "dataset": ["d0", "d1", "d1"],
        "mu": [1.0, 0.2, -0.5],
        "sigma": [1.0, 0.5, 2.0],
        "refusal_logit": [-2.0, -1.0, -np.inf],
    }
)


def test_simulated_engine_uses_the_model_choice_formula_and_the_parser():
    engine = SimulatedEngine(TRUTH, {"position_bias": 0.3}, Generation(logprobs=True))
    [response] = engine.generate([request("x", "y")])
    assert response.p_a == pytest.approx(ndtr((1.0 - 0.2 + 0.3) / math.sqrt(1.0 + 0.25)))
    [response] = engine.generate([request("z", "x")])
    assert response.p_a == pytest.approx(ndtr((-0.5 - 1.0 + 0.3) / math.sqrt(4.0 + 1.0)))

    n = 4000
    answers = engine.generate([request("x", "y", seed) for seed in range(n)])
    choices = pd.Series([parse_choice(r.text) for r in answers]).value_counts() / n
    refusal = expit((-2.0 - 1.0) / 2)
    assert choices["refusal"] == pytest.approx(refusal, abs=0.02)
    p_first = ndtr(1.1 / math.sqrt(1.25))
    assert choices["a"] == pytest.approx((1 - refusal) * p_first, abs=0.025)
    assert set(choices.index) == {"a", "b", "refusal"}
    # An answer depends on its request's seed alone.
    assert engine.generate([request("x", "y", 5)]) == engine.generate([request("x", "y", 5)])


def test_simulated_engine_follows_dataset_biases_condition_shifts_and_lapses():
    parameters = {
        "position_bias": 0.3,
        "position_bias_by_dataset": [0.2, -0.4],
        "condition_shifts": [[0.5, -0.5]],
        "lapse_rate": 0.1,
        "datasets": ["d0", "d1"],
    }
    engine = SimulatedEngine(TRUTH, parameters, Generation(logprobs=True))
    [default, shifted] = engine.generate(
        [request("x", "y"), replace(request("x", "y"), condition="condition_1")]
    )
    scale = math.sqrt(1.0 + 0.25)
    bias = (0.2 - 0.4) / 2
    assert default.p_a == pytest.approx(0.05 + 0.9 * ndtr((1.0 - 0.2 + bias) / scale))
    assert shifted.p_a == pytest.approx(0.05 + 0.9 * ndtr((1.5 - (0.2 - 0.5) + bias) / scale))
    [unknown] = engine.generate([replace(request("x", "y"), condition="calm")])
    assert unknown.error == "condition 'calm' is not in the truth (default, condition_1)"


def test_simulated_engine_takes_the_ordered_dataset_pairs_bias():
    parameters = {
        "position_bias": 0.3,
        "position_bias_by_pair": [[0.0, 0.7], [-0.5, 0.0]],
        "datasets": ["d0", "d1"],
    }
    engine = SimulatedEngine(TRUTH, parameters, Generation(logprobs=True))
    [x_first, y_first] = engine.generate([request("x", "y"), request("y", "x")])
    scale = math.sqrt(1.0 + 0.25)
    assert x_first.p_a == pytest.approx(ndtr((1.0 - 0.2 + 0.7) / scale))
    assert y_first.p_a == pytest.approx(ndtr((0.2 - 1.0 - 0.5) / scale))


def test_simulated_engine_writes_the_template_answer_form():
    engine = SimulatedEngine(
        TRUTH.assign(refusal_logit=-np.inf), {"position_bias": 0}, Generation()
    )
    xml = load_template("post-task-stated")
    texts = {r.text for r in engine.generate([request("x", "y", s, xml) for s in range(30)])}
    assert texts == {
        "I would rather do this one. <choice>A</choice>",
        "I would rather do this one. <choice>B</choice>",
    }
    numbered = load_template("pre-task-revealed-numbered")
    texts = {r.text for r in engine.generate([request("x", "y", s, numbered) for s in range(30)])}
    assert texts == {
        "Task 1: Here is my work on this task.",
        "Task 2: Here is my work on this task.",
    }
    [unknown] = engine.generate([request("x", "w")])
    assert unknown.error == "task 'w' is not in the truth table"


def test_simulated_ratings_stay_on_the_scale_and_follow_utility():
    engine = SimulatedEngine(TRUTH.assign(sigma=0.3), {"position_bias": 0}, Generation())
    banned = load_template("stated-rating-1-5-banned")
    ratings = {}
    for task in ("x", "y", "z"):
        messages = ({"role": "user", "content": banned.render(task)},)
        answers = engine.generate([Request(task, messages, s, (task,), banned) for s in range(200)])
        ratings[task] = [
            int(a.text.removeprefix("<rating>").removesuffix("</rating>")) for a in answers
        ]
    values = set(sum(ratings.values(), []))
    assert values <= {1, 2, 3, 5}
    assert np.mean(ratings["x"]) > np.mean(ratings["y"]) > np.mean(ratings["z"])


# --- vLLM, through a stand-in module with vLLM's offline API ------------------------------------


# Engine arguments that vllm.LLM passes on to EngineArgs through **kwargs.
ENGINE_ARGS = {"max_model_len", "max_num_seqs", "enforce_eager"}


def fake_vllm(created: list, system_role: bool = True) -> types.ModuleType:
    """A stand-in for the parts of vLLM the engine uses, with vLLM's signatures: `LLM(model, *,
    trust_remote_code, tensor_parallel_size, dtype, quantization, seed, gpu_memory_utilization,
    **kwargs)` (the rest go to EngineArgs), `LLM.chat(messages, sampling_params, use_tqdm,
    lora_request, chat_template, chat_template_content_format, add_generation_prompt, ...)`,
    `LLM.get_tokenizer()`, keyword-only `SamplingParams`, and `CompletionOutput.finish_reason`.
    With `system_role=False` the chat template raises on a system message, as Gemma 2's does."""
    module = types.ModuleType("vllm")

    class SamplingParams:
        def __init__(
            self, *, n=1, temperature=1.0, top_p=1.0, seed=None, max_tokens=16, logprobs=None
        ):
            self.n, self.temperature, self.top_p, self.seed = n, temperature, top_p, seed
            self.max_tokens, self.logprobs = max_tokens, logprobs

    class Logprob:
        def __init__(self, logprob, rank, decoded_token):
            self.logprob, self.rank, self.decoded_token = logprob, rank, decoded_token

    class CompletionOutput:
        def __init__(self, text, token_ids, logprobs, finish_reason):
            self.index, self.text, self.token_ids, self.logprobs = 0, text, token_ids, logprobs
            self.finish_reason, self.stop_reason = finish_reason, None

    class RequestOutput:
        def __init__(self, outputs):
            self.outputs = outputs

    class Tokenizer:
        def apply_chat_template(
            self, conversation, chat_template=None, add_generation_prompt=False, tokenize=True
        ):
            roles = [message["role"] for message in conversation]
            if "system" in roles and not system_role:
                raise ValueError("System role not supported")
            return "".join(f"<{m['role']}>{m['content']}" for m in conversation)

    class LLM:
        def __init__(
            self,
            model,
            *,
            tokenizer=None,
            trust_remote_code=False,
            tensor_parallel_size=1,
            dtype="auto",
            quantization=None,
            seed=None,
            gpu_memory_utilization=0.9,
            **kwargs,
        ):
            unknown = set(kwargs) - ENGINE_ARGS
            if unknown:
                raise TypeError(f"EngineArgs got unexpected keyword arguments {unknown}")
            created.append(
                {
                    "model": model,
                    "trust_remote_code": trust_remote_code,
                    "tensor_parallel_size": tensor_parallel_size,
                    "dtype": dtype,
                    "quantization": quantization,
                    "seed": seed,
                    "gpu_memory_utilization": gpu_memory_utilization,
                    **kwargs,
                }
            )

        def get_tokenizer(self, lora_request=None):
            return Tokenizer()

        def chat(
            self,
            messages,
            sampling_params=None,
            use_tqdm=True,
            lora_request=None,
            chat_template=None,
            chat_template_content_format="auto",
            add_generation_prompt=True,
            continue_final_message=False,
            tools=None,
            chat_template_kwargs=None,
            mm_processor_kwargs=None,
        ):
            assert len(messages) == len(sampling_params) and use_tqdm is False
            for conversation in messages:
                Tokenizer().apply_chat_template(conversation, chat_template)
            created.append(
                {"params": sampling_params, "messages": messages, "chat_template": chat_template}
            )
            outputs = []
            for conversation, params in zip(messages, sampling_params, strict=True):
                prompt = conversation[-1]["content"]
                declines = any(task in prompt for task in DECLINED)
                label = "A" if params.seed % 2 else "B"
                text = "I can't help with either of these." if declines else f"Task {label}: sure"
                steps = None
                if params.logprobs:
                    steps = [
                        {11: Logprob(-0.1, 1, "Task")},
                        {
                            21: Logprob(math.log(0.6), 1, " A"),
                            22: Logprob(math.log(0.2), 2, " B"),
                            23: Logprob(math.log(0.1), 3, "A"),
                        },
                    ]
                token_ids = [11, 21 if label == "A" else 22]
                finish = "length" if params.max_tokens < 8 else "stop"
                outputs.append(RequestOutput([CompletionOutput(text, token_ids, steps, finish)]))
            return outputs

    module.LLM, module.SamplingParams = LLM, SamplingParams
    return module


def test_vllm_engine_end_to_end_with_logprobs(tmp_path, monkeypatch):
    created: list = []
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(created))
    out = tmp_path / "run"
    args = [
        "--engine",
        "vllm",
        "--tasks",
        "shipped:decline,chat",
        "--n-tasks",
        "6",
        "--model",
        "org/model-7b",
        "--out",
        str(out),
        "--logprobs",
        "--temperature",
        "0",
        "--tensor-parallel-size",
        "2",
        "--seed",
        "4",
        "--system-prompt",
        "Be yourself.",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert created[0] == {
        "model": "org/model-7b",
        "trust_remote_code": False,
        "tensor_parallel_size": 2,
        "dtype": "auto",
        "quantization": None,
        "seed": 4,
        "gpu_memory_utilization": 0.9,
    }
    params = created[1]["params"][0]
    assert (params.n, params.temperature, params.max_tokens, params.logprobs) == (1, 0.0, 256, 20)
    assert created[1]["messages"][0][0] == {"role": "system", "content": "Be yourself."}
    table = pd.read_parquet(out / "comparisons.parquet")
    assert len(table) == 30 and set(table["dataset_a"]) == {"decline", "chat"}
    decided = table[table["choice"] != "refusal"]
    assert np.allclose(decided["p_a"], 0.7 / 0.9) and np.allclose(decided["label_mass"], 0.9)
    assert (decided["choice"] == np.where(decided["seed"] % 2 == 1, "a", "b")).all()
    refused = table[table["choice"] == "refusal"]
    assert (
        len(refused) > 0 and refused["raw_response"].eq("I can't help with either of these.").all()
    )
    assert (
        table["model"].eq("org/model-7b").all()
        and table["template"].eq("pre-task-revealed@v1").all()
    )
    assert table["finish_reason"].eq("stop").all()
    records = [
        json.loads(line)
        for path in (out / "shards").glob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert {record["completion_tokens"] for record in records} == {2}  # the outputs' token_ids
    assert json.loads((out / "manifest.json").read_text())["system_prompt_folded"] is False


def test_vllm_options_for_a_large_model_and_a_template_without_a_system_role(tmp_path, monkeypatch):
    created: list = []
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm(created, system_role=False))
    template = tmp_path / "chat.jinja"
    template.write_text("{% for m in messages %}{{ m.content }}{% endfor %}")
    out = tmp_path / "run"
    args = [
        *("--engine", "vllm", "--tasks", "shipped:chat", "--n-tasks", "3"),
        *("--model", "google/gemma-2-27b-it", "--out", str(out), "--max-tokens", "4"),
        *("--max-model-len", "8192", "--gpu-memory-utilization", "0.6", "--dtype", "bfloat16"),
        *("--quantization", "fp8", "--trust-remote-code", "--chat-template", str(template)),
        *("--system-prompt", "Be yourself."),
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert created[0] == {
        "model": "google/gemma-2-27b-it",
        "trust_remote_code": True,
        "tensor_parallel_size": 1,
        "dtype": "bfloat16",
        "quantization": "fp8",
        "seed": 0,
        "gpu_memory_utilization": 0.6,
        "max_model_len": 8192,
    }
    call = created[1]
    assert call["chat_template"] == template.read_text()
    first = call["messages"][0]
    assert [m["role"] for m in first] == ["user"]
    assert first[0]["content"].startswith("Be yourself.\n\nYou will be given two tasks.")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["system_prompt_folded"] is True
    assert manifest["engine_options"]["vllm"]["max_model_len"] == 8192
    table = pd.read_parquet(out / "comparisons.parquet")
    assert table["finish_reason"].eq("length").all()
    # A different chat template changes the answers: the folder is not resumed with it.
    template.write_text("{% for m in messages %}[{{ m.content }}]{% endfor %}")
    rerun = CliRunner().invoke(app, args)
    assert rerun.exit_code == 2 and "answer_settings" in rerun.output


def test_vllm_settings_are_checked():
    with pytest.raises(ValueError, match="gpu_memory_utilization must be in"):
        VllmSettings(gpu_memory_utilization=1.5)
    with pytest.raises(ValueError, match="max_model_len must be at least 1"):
        VllmSettings(max_model_len=0)


def test_engine_crashes_are_recorded_and_stop_the_run_after_three_batches(tmp_path, monkeypatch):
    module = fake_vllm([])

    def broken(self, messages, sampling_params=None, use_tqdm=True, **options):
        raise RuntimeError("CUDA out of memory")

    module.LLM.chat = broken
    monkeypatch.setitem(sys.modules, "vllm", module)
    args = [
        "--engine",
        "vllm",
        "--tasks",
        "shipped:chat",
        "--model",
        "m",
        "--out",
        str(tmp_path / "run"),
        "--batch-size",
        "10",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2
    assert "failed on 3 batches in a row" in result.output
    assert "0 of 462 trials answered" in result.output and "CUDA out of memory" in result.output
    shards = sorted((tmp_path / "run" / "shards").glob("*.jsonl"))
    assert len(shards) == 3
    assert (
        json.loads(shards[0].read_text().splitlines()[0])["error"]
        == "RuntimeError: CUDA out of memory"
    )


def test_missing_engine_packages_are_clear_errors(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(CollectError, match=r"pip install 'bayespref\[vllm\]'"):
        make_engine("vllm", "m", Generation(), EngineOptions())
    with pytest.raises(ValueError, match="unknown engine 'gpt'"):
        make_engine("gpt", "m", Generation(), EngineOptions())


def test_the_install_hint_keeps_its_brackets_on_the_terminal(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    args = ["--engine", "vllm", "--tasks", "shipped:chat", "--n-tasks", "2", "--model", "m"]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "run")])
    assert "pip install 'bayespref[vllm]'" in " ".join(result.output.split())
