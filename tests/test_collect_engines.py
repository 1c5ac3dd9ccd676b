from __future__ import annotations

import json
import math
import sys
import threading
import time
import types
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
import typer
from scipy.special import expit, ndtr
from typer.testing import CliRunner

from bayespref.cli.collect import collect_command
from bayespref.collect.engines import EngineOptions, Generation, Request, make_engine
from bayespref.collect.engines.base import label_probability
from bayespref.collect.engines.openai import HttpSettings, OpenAIEngine
from bayespref.collect.engines.simulated import SimulatedEngine
from bayespref.collect.parse import parse_choice
from bayespref.collect.templates import load_template
from bayespref.data.tasks import load_shipped

PRE = load_template("pre-task-revealed")
DECLINED = set(load_shipped(["decline"])["prompt"])
app = typer.Typer()
app.command()(collect_command)


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


# --- OpenAI-compatible server on loopback -------------------------------------------------------


class FakeServer:
    """A chat completions server on 127.0.0.1 that fails, stalls or answers as scripted."""

    def __init__(self) -> None:
        self.script: list[str] = []  # per request, in order: "500", "429", "stall", "ok"
        self.fail_tasks: set[str] = set()  # prompts mentioning these always get HTTP 500
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.bodies.append(body | {"auth": self.headers.get("Authorization")})
                    step = server.script.pop(0) if server.script else "ok"
                prompt = body["messages"][-1]["content"]
                if step in ("500", "429") or any(t in prompt for t in server.fail_tasks):
                    self.send_response(429 if step == "429" else 500)
                    self.end_headers()
                    self.wfile.write(b'{"error": "busy"}')
                    return
                if step == "stall":
                    time.sleep(0.6)
                reply = json.dumps(server.completion(body)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @staticmethod
    def completion(body: dict) -> dict:
        # Picks the task whose text is shorter, as "Task B:" when it is shown second.
        prompt = body["messages"][-1]["content"]
        first = prompt.split("Task A:\n")[1].split("\n\nTask B:")[0]
        second = prompt.split("Task B:\n")[1]
        label = "A" if len(first) <= len(second) else "B"
        choice = {"index": 0, "message": {"role": "assistant", "content": f"Task {label}: ok"}}
        if body.get("logprobs"):
            top = [{"token": " A", "logprob": -0.5}, {"token": "B", "logprob": -1.5}]
            choice["logprobs"] = {
                "content": [
                    {"token": "Task", "logprob": -0.01, "top_logprobs": []},
                    {"token": f" {label}", "logprob": -0.5, "top_logprobs": top},
                ]
            }
        return {"id": "x", "object": "chat.completion", "choices": [choice]}

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


FAST_HTTP = dict(concurrency=4, timeout=0.3, retries=2, backoff=0.01)


def test_openai_engine_retries_errors_and_timeouts_then_answers(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-test")
    with FakeServer() as server:
        http = HttpSettings(server.url, api_key_env="TEST_KEY", **FAST_HTTP | {"concurrency": 1})
        engine = OpenAIEngine("tiny-model", Generation(0.7, 12, logprobs=True), http)
        server.script = ["500", "429", "ok", "stall", "ok"]
        first, second = engine.generate(
            [request("Short.", "A longer task."), request("Long one.", "Tiny")]
        )
        assert (first.text, first.error) == ("Task A: ok", None)
        assert (second.text, second.error) == ("Task B: ok", None)
        assert first.p_a == pytest.approx(math.exp(-0.5) / (math.exp(-0.5) + math.exp(-1.5)))
        assert len(server.bodies) == 5
        body = server.bodies[0]
        assert body["model"] == "tiny-model" and body["temperature"] == 0.7
        assert body["max_tokens"] == 12 and body["seed"] == 0 and body["n"] == 1
        assert body["logprobs"] is True and body["top_logprobs"] == 20
        assert body["auth"] == "Bearer sk-test"

        server.script = ["500", "500", "500"]
        [failed] = engine.generate([request("a", "b")])
        assert failed.error.startswith("gave up after 3 attempts: HTTP 500")
        assert len(server.bodies) == 8


def test_openai_run_records_failures_and_a_rerun_retries_only_them(tmp_path, monkeypatch):
    secret = "sk-never-written-7f3a"
    monkeypatch.setenv("OPENAI_API_KEY", secret)
    tasks = tmp_path / "tasks.csv"
    pd.DataFrame(
        {
            "task_id": ["t1", "t2", "t3", "t4"],
            "dataset": ["d"] * 4,
            "prompt": ["Say hi.", "Count to ten slowly.", "Name a fruit!", "Write one word."],
        }
    ).to_csv(tasks, index=False)
    runner = CliRunner()
    with FakeServer() as server:
        args = [
            "--engine",
            "openai",
            "--tasks",
            str(tasks),
            "--model",
            "m",
            "--out",
            str(tmp_path / "run"),
            "--base-url",
            server.url,
            "--timeout",
            "2",
            "--retries",
            "1",
            "--batch-size",
            "12",
        ]
        server.fail_tasks = {"Name a fruit!"}
        first = runner.invoke(app, args)
        assert first.exit_code == 1, first.output
        assert "6 of 12 trials answered" in first.output
        assert "6 trials failed" in first.output and "run the same command again" in first.output
        manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
        assert manifest["status"] | {"updated": None} == {
            "planned": 12,
            "completed": 6,
            "errors": 6,
            "complete": False,
            "updated": None,
        }
        asked = len(server.bodies)
        assert asked == 6 + 6 * 2

        server.fail_tasks = set()
        second = runner.invoke(app, args)
        assert second.exit_code == 0, second.output
        assert len(server.bodies) == asked + 6
    table = pd.read_parquet(tmp_path / "run" / "comparisons.parquet")
    assert len(table) == 12 and table["key"].is_unique
    shorter = {"t1": 7, "t2": 20, "t3": 13, "t4": 15}
    expected = np.where(table["task_a"].map(shorter) <= table["task_b"].map(shorter), "a", "b")
    assert table["choice"].tolist() == expected.tolist()
    assert server.bodies[-1]["auth"] == f"Bearer {secret}"
    written = [path for path in (tmp_path / "run").rglob("*") if path.is_file()]
    assert written and not any(secret.encode() in path.read_bytes() for path in written)
    assert secret not in first.output + second.output


# --- vLLM, through a stand-in module with vLLM's offline API ------------------------------------


def fake_vllm(created: list) -> types.ModuleType:
    module = types.ModuleType("vllm")

    class SamplingParams:
        def __init__(self, n=1, temperature=1.0, seed=None, max_tokens=16, logprobs=None):
            self.n, self.temperature, self.seed = n, temperature, seed
            self.max_tokens, self.logprobs = max_tokens, logprobs

    class Logprob:
        def __init__(self, logprob, rank, decoded_token):
            self.logprob, self.rank, self.decoded_token = logprob, rank, decoded_token

    class CompletionOutput:
        def __init__(self, text, token_ids, logprobs):
            self.index, self.text, self.token_ids, self.logprobs = 0, text, token_ids, logprobs

    class RequestOutput:
        def __init__(self, outputs):
            self.outputs = outputs

    class LLM:
        def __init__(self, model, tensor_parallel_size=1, seed=0):
            created.append(
                {"model": model, "tensor_parallel_size": tensor_parallel_size, "seed": seed}
            )
            self.calls = []

        def chat(self, messages, sampling_params=None, use_tqdm=True):
            assert len(messages) == len(sampling_params) and use_tqdm is False
            created.append({"params": sampling_params, "messages": messages})
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
                outputs.append(RequestOutput([CompletionOutput(text, token_ids, steps)]))
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
    assert created[0] == {"model": "org/model-7b", "tensor_parallel_size": 2, "seed": 4}
    params = created[1]["params"][0]
    assert (params.n, params.temperature, params.max_tokens, params.logprobs) == (1, 0.0, 32, 20)
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


def test_engine_crashes_are_recorded_and_stop_the_run_after_three_batches(tmp_path, monkeypatch):
    module = fake_vllm([])

    def broken(self, messages, sampling_params=None, use_tqdm=True):
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
    with pytest.raises(RuntimeError, match=r"pip install 'bayespref\[vllm\]'"):
        make_engine("vllm", "m", Generation(), EngineOptions())
    with pytest.raises(ValueError, match="unknown engine 'gpt'"):
        make_engine("gpt", "m", Generation(), EngineOptions())
