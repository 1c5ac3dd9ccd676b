"""An OpenAI-compatible chat completions server (OpenAI, vLLM serve, llama.cpp, ...), over HTTP
with the standard library: requests in parallel threads, bounded retries with backoff."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import HTTPException

from bayespref.collect.engines.base import Generation, Request, Response, label_probability

RETRIED_STATUS = (408, 409, 429, 500, 502, 503, 504)


@dataclass(frozen=True)
class HttpSettings:
    base_url: str = "http://127.0.0.1:8000/v1"
    api_key_env: str = "OPENAI_API_KEY"  # the variable holding the key; unset means no key sent
    concurrency: int = 8
    timeout: float = 120.0  # seconds per attempt
    retries: int = 4  # attempts after the first one
    backoff: float = 1.0  # seconds before the first retry, doubled after each


class _Retry(Exception):
    """A failure worth another attempt (timeout, connection error, 429 or 5xx)."""


class OpenAIEngine:
    name = "openai"
    folds_system = False

    def __init__(self, model: str, generation: Generation, http: HttpSettings) -> None:
        self.model = model
        self.generation = generation
        self.http = http
        self.url = http.base_url.rstrip("/") + "/chat/completions"

    def _body(self, request: Request) -> dict:
        body = {
            "model": self.model,
            "messages": list(request.messages),
            "temperature": self.generation.temperature,
            "max_tokens": self.generation.max_tokens,
            "seed": request.seed,
            "n": 1,
        }
        if self.generation.logprobs:
            body |= {"logprobs": True, "top_logprobs": self.generation.top_logprobs}
        return body

    def _post(self, body: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.http.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        message = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        try:
            with urllib.request.urlopen(message, timeout=self.http.timeout) as reply:
                return json.loads(reply.read())
        except urllib.error.HTTPError as error:
            detail = error.read()[:300].decode(errors="replace")
            if error.code in RETRIED_STATUS:
                raise _Retry(f"HTTP {error.code}: {detail}") from error
            raise RuntimeError(f"HTTP {error.code}: {detail}") from error
        except (TimeoutError, urllib.error.URLError, ConnectionError, HTTPException) as error:
            raise _Retry(f"{type(error).__name__}: {error}") from error

    def _response(self, reply: dict, request: Request) -> Response:
        choice = reply["choices"][0]
        text = choice["message"].get("content") or ""
        if not self.generation.logprobs:
            return Response(text)
        steps = (choice.get("logprobs") or {}).get("content") or []
        sampled = [step["token"] for step in steps]
        alternatives = []
        for step in steps:
            top = [(alt["token"], alt["logprob"]) for alt in step.get("top_logprobs", [])]
            if all(token != step["token"] for token, _ in top):
                top.append((step["token"], step["logprob"]))
            alternatives.append(top)
        p_a, mass = label_probability(sampled, alternatives, request.template.labels)
        return Response(text, p_a, mass)

    def _one(self, request: Request) -> Response:
        body = self._body(request)
        delay = self.http.backoff
        for attempt in range(self.http.retries + 1):
            if attempt:
                time.sleep(delay)
                delay *= 2
            try:
                return self._response(self._post(body), request)
            except _Retry as error:
                failure = error
            except (RuntimeError, KeyError, IndexError, TypeError, ValueError) as error:
                return Response(error=f"{type(error).__name__}: {error}")
        return Response(error=f"gave up after {self.http.retries + 1} attempts: {failure}")

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        with ThreadPoolExecutor(max_workers=self.http.concurrency) as pool:
            return list(pool.map(self._one, requests))
