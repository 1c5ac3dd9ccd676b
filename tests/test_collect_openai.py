"""The OpenAI-compatible engine against a scripted server on 127.0.0.1 that misbehaves on cue:
429 with Retry-After, 500, stalls, trickling bodies, broken JSON, content parts, refusals,
echoed request headers, huge answers, a 400 for `max_completion_tokens`."""

from __future__ import annotations

import json
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from bayespref.cli.app import guarded
from bayespref.cli.collect import collect_command
from bayespref.collect.engines import Generation, Request
from bayespref.collect.engines.openai import HttpSettings, OpenAIEngine, retry_after_seconds
from bayespref.collect.templates import load_template

PRE = load_template("pre-task-revealed")
SECRET = "sk-never-written-7f3a"
app = typer.Typer()
app.command()(guarded(collect_command))  # through the one error path, as registered


def request(first: str, second: str, seed: int = 0) -> Request:
    messages = ({"role": "user", "content": PRE.render(first, second)},)
    return Request(f"{first}-{second}-{seed}", messages, seed, (first, second), PRE)


class FakeServer:
    """Chat completions on 127.0.0.1, scripted per request; shuts itself down after `lifetime`
    seconds so a test that goes wrong cannot leave it running.

    Steps: ok, 500, 429 or 429:SECONDS (Retry-After), stall:SECONDS, trickle (one byte every
    0.1 s), badjson, parts, number, dict, refusal, length, huge:CHARS, echo401, echo500,
    reject-mct (400 when the body has max_completion_tokens)."""

    def __init__(self, lifetime: float = 60.0) -> None:
        self.script: list[str] = []
        self.fail_tasks: set[str] = set()  # prompts mentioning these always get HTTP 500
        self.echo_failures = False  # those 500s echo the request's headers
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = 10  # seconds a client may take to send its request

            def log_message(self, *args) -> None:
                pass

            def send(self, status: int, payload: bytes, headers: dict | None = None) -> None:
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.bodies.append(body | {"auth": self.headers.get("Authorization")})
                    step = server.script.pop(0) if server.script else "ok"
                prompt = body["messages"][-1]["content"]
                name, _, argument = step.partition(":")
                echoed = "".join(f"{k}: {v}\n" for k, v in self.headers.items()).encode()
                failing = any(task in prompt for task in server.fail_tasks)
                if name in ("500", "echo500") or failing:
                    echo = name == "echo500" or (failing and server.echo_failures)
                    self.send(500, echoed if echo else b'{"error": "busy"}')
                elif name == "echo401":
                    self.send(401, b"bad credentials; you sent:\n" + echoed)
                elif name == "429":
                    self.send(429, b'{"error": "slow down"}', {"Retry-After": argument or "0"})
                elif name == "reject-mct" and "max_completion_tokens" in body:
                    message = "Unrecognized request argument supplied: max_completion_tokens"
                    self.send(400, json.dumps({"error": {"message": message}}).encode())
                elif name == "badjson":
                    self.send(200, b'{"choices": [{"message": ')
                elif name == "trickle":
                    payload = json.dumps(server.completion(body)).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    try:
                        for byte in payload:
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                            time.sleep(0.1)
                    except OSError:  # the client gave up
                        pass
                else:
                    if name == "stall":
                        time.sleep(float(argument))
                    self.send(200, json.dumps(server.completion(body, name, argument)).encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.stopper = threading.Timer(lifetime, self.httpd.shutdown)
        self.stopper.daemon = True

    @staticmethod
    def completion(body: dict, step: str = "ok", argument: str = "") -> dict:
        # Picks the task whose text is shorter, as "Task B:" when it is shown second.
        prompt = body["messages"][-1]["content"]
        first = prompt.split("Task A:\n")[1].split("\n\nTask B:")[0]
        second = prompt.split("Task B:\n")[1]
        label = "A" if len(first) <= len(second) else "B"
        text = f"Task {label}: ok"
        message: dict = {"role": "assistant", "content": text}
        finish = "stop"
        if step == "parts":
            message["content"] = [{"type": "text", "text": f"Task {label}"}, ": ok", {"text": "!"}]
        elif step == "number":
            message["content"] = 7
        elif step == "dict":
            message["content"] = {"answer": "A"}
        elif step == "refusal":
            message |= {"content": None, "refusal": "I can't help with that request."}
        elif step == "length":
            finish = "length"
        elif step == "huge":
            message["content"] = text + " word" * (int(argument) // 5)
        choice = {"index": 0, "message": message, "finish_reason": finish}
        if body.get("logprobs"):
            top = [{"token": " A", "logprob": -0.5}, {"token": "B", "logprob": -1.5}]
            choice["logprobs"] = {
                "content": [
                    {"token": "Task", "logprob": -0.01, "top_logprobs": []},
                    {"token": f" {label}", "logprob": -0.5, "top_logprobs": top},
                ]
            }
        usage = {"prompt_tokens": 40, "completion_tokens": 4, "total_tokens": 44}
        return {"id": "x", "object": "chat.completion", "choices": [choice], "usage": usage}

    def __enter__(self) -> FakeServer:
        self.thread.start()
        self.stopper.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stopper.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()


FAST = dict(concurrency=1, timeout=0.5, retries=2, backoff=0.01)


def engine_for(server: FakeServer, generation: Generation | None = None, **http) -> OpenAIEngine:
    settings = HttpSettings(server.url, **FAST | http)
    return OpenAIEngine("tiny-model", generation or Generation(0.7, 12), settings)


def test_retries_errors_and_timeouts_then_answers(monkeypatch):
    monkeypatch.setenv("TEST_KEY", "sk-test")
    with FakeServer() as server:
        engine = engine_for(server, Generation(0.7, 12, logprobs=True), api_key_env="TEST_KEY")
        server.script = ["500", "429", "ok", "stall:0.8", "ok"]
        first, second = engine.generate(
            [request("Short.", "A longer task."), request("Long one.", "Tiny")]
        )
        assert (first.text, first.error, first.finish_reason) == ("Task A: ok", None, "stop")
        assert first.completion_tokens == 4  # from the reply's usage
        assert (second.text, second.error) == ("Task B: ok", None)
        assert first.p_a == pytest.approx(math.exp(-0.5) / (math.exp(-0.5) + math.exp(-1.5)))
        assert len(server.bodies) == 5
        body = server.bodies[0]
        assert body["model"] == "tiny-model" and body["temperature"] == 0.7
        assert body["max_completion_tokens"] == 12 and "max_tokens" not in body
        assert body["seed"] == 0 and body["n"] == 1
        assert body["logprobs"] is True and body["top_logprobs"] == 20
        assert body["auth"] == "Bearer sk-test"

        server.script = ["500", "500", "500"]
        [failed] = engine.generate([request("a", "b")])
        assert failed.error.startswith("gave up after 3 attempts: HTTP 500")
        assert len(server.bodies) == 8


def test_retry_after_is_honoured_and_a_long_one_ends_the_trial():
    with FakeServer() as server:
        engine = engine_for(server, max_backoff=5)
        server.script = ["429:1", "ok"]
        start = time.monotonic()
        [answer] = engine.generate([request("a", "bb")])
        waited = time.monotonic() - start
        assert answer.text == "Task A: ok" and 1.0 <= waited < 2.0
        server.script = ["429:30"]
        start = time.monotonic()
        [answer] = engine.generate([request("a", "bb")])
        assert time.monotonic() - start < 1.0
        assert answer.error.startswith("HTTP 429") and "asked to wait 30 s" in answer.error
    assert retry_after_seconds("2.5") == 2.5
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_backoff_is_jittered_and_seeded():
    with FakeServer() as server:
        engine = engine_for(server, retries=3, backoff=0.2)
        waits = []
        for _ in range(2):
            server.script = ["500", "500", "ok"]
            start = time.monotonic()
            engine.generate([request("a", "bb", seed=11)])
            waits.append(time.monotonic() - start)
        # Uniform draws below 0.2 and 0.4 s: never the full doubling, the same on a rerun.
        assert all(w < 0.6 for w in waits) and abs(waits[0] - waits[1]) < 0.1


def test_a_trickling_body_is_cut_at_the_whole_attempt_deadline():
    with FakeServer() as server:
        engine = engine_for(server, retries=0, timeout=0.5)
        server.script = ["trickle"]
        start = time.monotonic()
        [answer] = engine.generate([request("a", "bb")])
        assert time.monotonic() - start < 1.5  # the body alone takes over 10 s
        assert answer.error == "gave up after 1 attempts: no complete reply within 0.5 s"


def test_content_parts_numbers_refusals_and_unreadable_replies():
    with FakeServer() as server:
        engine = engine_for(server)
        server.script = ["parts", "number", "refusal", "length", "dict", "badjson", "ok"]
        answers = engine.generate([request("a", "bb", seed=s) for s in range(6)])
    parts, number, refusal, length, unreadable, broken = answers
    assert (parts.text, parts.error) == ("Task A: ok!", None)
    assert (number.text, number.error) == ("7", None)
    assert refusal.refused and refusal.text == "I can't help with that request."
    assert length.finish_reason == "length" and length.text == "Task A: ok"
    assert unreadable.error.startswith("unreadable reply: message content of type dict")
    assert broken.error is None and broken.text == "Task A: ok"  # retried after broken JSON


def test_max_tokens_fallback_for_servers_that_reject_max_completion_tokens():
    with FakeServer() as server:
        engine = engine_for(server)
        server.script = ["reject-mct", "ok", "ok"]
        first, second = engine.generate([request("a", "bb"), request("cc", "d")])
        assert first.text == "Task A: ok" and second.text == "Task B: ok"
        assert "max_completion_tokens" in server.bodies[0]
        assert [body.get("max_tokens") for body in server.bodies[1:]] == [12, 12]


def test_the_key_is_redacted_from_echoed_headers(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    with FakeServer() as server:
        engine = engine_for(server, retries=0)
        server.script = ["echo401", "echo500"]
        unauthorized, failed = engine.generate([request("a", "bb"), request("a", "bb", 1)])
    assert server.bodies[0]["auth"] == f"Bearer {SECRET}"
    for answer in (unauthorized, failed):
        assert SECRET not in answer.error and "Bearer [redacted]" in answer.error


def test_huge_replies_are_a_failure_past_the_byte_limit():
    with FakeServer() as server:
        engine = engine_for(server, max_reply_bytes=100_000)
        server.script = ["huge:50000", "huge:200000"]
        fits, over = engine.generate([request("a", "bb"), request("a", "bb", 1)])
    assert len(fits.text) > 50_000 and fits.error is None
    assert over.error == "unreadable reply: reply over 100000 bytes"


def test_api_key_env_must_name_a_set_variable(monkeypatch):
    monkeypatch.delenv("NOT_SET_ANYWHERE", raising=False)
    with pytest.raises(ValueError, match="not the key itself"):
        HttpSettings(api_key_env=SECRET)
    with pytest.raises(ValueError, match="'NOT_SET_ANYWHERE', which is not set"):
        HttpSettings(api_key_env="NOT_SET_ANYWHERE")
    with pytest.raises(ValueError, match="concurrency must be at least 1, not 0"):
        HttpSettings(concurrency=0)


@pytest.fixture
def tasks_file(tmp_path):
    path = tmp_path / "tasks.csv"
    pd.DataFrame(
        {
            "task_id": ["t1", "t2", "t3", "t4"],
            "dataset": ["d"] * 4,
            "prompt": ["Say hi.", "Count to ten slowly.", "Name a fruit!", "Write one word."],
        }
    ).to_csv(path, index=False)
    return path


def cli_args(server: FakeServer, tasks, out, *extra: str) -> list[str]:
    return [
        *("--engine", "openai", "--tasks", str(tasks), "--model", "m", "--out", str(out)),
        *("--base-url", server.url, "--timeout", "2", "--retries", "1", "--batch-size", "12"),
        *extra,
    ]


def test_run_records_failures_and_a_rerun_retries_only_them(tmp_path, tasks_file, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    runner = CliRunner()
    with FakeServer() as server:
        args = cli_args(server, tasks_file, tmp_path / "run")
        server.fail_tasks = {"Name a fruit!"}
        server.echo_failures = True
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
    assert table["finish_reason"].eq("stop").all() and not table["refused_chosen"].any()
    assert server.bodies[-1]["auth"] == f"Bearer {SECRET}"
    written = [path for path in (tmp_path / "run").rglob("*") if path.is_file()]
    assert written and not any(SECRET.encode() in path.read_bytes() for path in written)
    assert SECRET not in first.output + second.output


def test_run_keeps_refusals_and_caps_huge_answers(tmp_path, tasks_file):
    with FakeServer() as server:
        server.script = ["refusal", "huge:300000", "dict"]
        args = cli_args(server, tasks_file, tmp_path / "run", "--max-answer-chars", "1000")
        args[args.index("--batch-size") + 1] = "1"
        first = CliRunner().invoke(app, [*args, "--concurrency", "1"])
        assert first.exit_code == 1 and "unreadable reply" in first.output
        second = CliRunner().invoke(app, [*args, "--concurrency", "1"])
        assert second.exit_code == 0, second.output
    table = pd.read_parquet(tmp_path / "run" / "comparisons.parquet")
    refused, huge = table.iloc[0], table.iloc[1]
    assert refused["choice"] == "refusal"
    assert refused["raw_response"] == "I can't help with that request."
    assert len(huge["raw_response"]) == 1000 and huge["raw_truncated"]
    assert table["raw_truncated"].sum() == 1 and len(table) == 12


def test_the_key_itself_or_an_unset_name_is_refused_before_anything_is_written(
    tmp_path, tasks_file, monkeypatch
):
    monkeypatch.delenv("UNSET_KEY_VAR", raising=False)
    with FakeServer() as server:
        for value, message in ((SECRET, "not the key itself"), ("UNSET_KEY_VAR", "not set")):
            args = cli_args(server, tasks_file, tmp_path / "run", "--api-key-env", value)
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 2 and message in " ".join(result.output.split())
            assert SECRET not in result.output
        assert server.bodies == []
    assert not (tmp_path / "run").exists()


def test_an_answer_stored_as_a_list_by_an_older_version_is_asked_again(tmp_path, tasks_file):
    with FakeServer() as server:
        args = cli_args(server, tasks_file, tmp_path / "run")
        assert CliRunner().invoke(app, args).exit_code == 0
        shard = next((tmp_path / "run" / "shards").glob("*.jsonl"))
        lines = shard.read_text().splitlines()
        first = json.loads(lines[0]) | {"raw_response": [{"type": "text", "text": "Task A"}]}
        shard.write_text("\n".join([json.dumps(first), *lines[1:]]) + "\n")
        asked = len(server.bodies)
        rerun = CliRunner().invoke(app, args)
        assert rerun.exit_code == 0, rerun.output
        assert len(server.bodies) == asked + 1
    table = pd.read_parquet(tmp_path / "run" / "comparisons.parquet")
    assert len(table) == 12 and table["raw_response"].map(type).eq(str).all()
