"""An OpenAI-compatible chat completions server (OpenAI, vLLM serve, llama.cpp, ...), over HTTP
with the standard library: requests in parallel threads, bounded retries with jittered backoff
that honour Retry-After.

Hand-written rather than through the `openai` SDK because collection needs what the SDK does not
give: a deadline on the whole attempt (httpx's timeouts bound each socket operation, so a server
trickling a byte at a time keeps a request alive indefinitely), a bound on the bytes read from a
reply, the raw error body (to redact an echoed key before it is stored or printed), and lenient
reading of replies that stray from the schema (content parts, numbers, a `refusal` field).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import random
import re
import socket
import ssl
import threading
import time
import urllib.parse
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from bayespref.collect.engines.base import Generation, Request, Response, label_probability
from bayespref.errors import CollectError

RETRIED_STATUS = (408, 409, 429, 500, 502, 503, 504)
DEFAULT_KEY_ENV = "OPENAI_API_KEY"
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BEARER = re.compile(r"(Bearer\s+)\S+", re.IGNORECASE)
_CHUNK = 65536


def check_api_key_env(name: str) -> None:
    """Refuse a value that is not an environment variable's name (such as the key itself, which
    would otherwise end up in manifest.json) or names a variable that is not set."""
    if not _VARIABLE.fullmatch(name):
        raise CollectError(
            "--api-key-env takes the name of an environment variable holding the key (letters, "
            "digits and '_'), not the key itself"
        )
    if not os.environ.get(name):
        raise CollectError(f"--api-key-env names '{name}', which is not set in the environment")


@dataclass(frozen=True)
class HttpSettings:
    base_url: str = "http://127.0.0.1:8000/v1"
    # The variable holding the key. None: OPENAI_API_KEY when set, else no key is sent (a local
    # server); a name given must be set.
    api_key_env: str | None = None
    concurrency: int = 8
    timeout: float = 120.0  # seconds for a whole attempt: connecting, sending, the full reply
    retries: int = 4  # attempts after the first one
    backoff: float = 1.0  # the first retry waits up to this (jittered), doubling after each
    max_backoff: float = 60.0  # the longest wait before a retry, Retry-After included
    max_reply_bytes: int = 32 * 2**20  # a longer reply is a failed attempt

    def __post_init__(self) -> None:
        if self.api_key_env is not None:
            check_api_key_env(self.api_key_env)
        for name in ("concurrency", "max_reply_bytes"):
            if getattr(self, name) < 1:
                raise CollectError(f"{name} must be at least 1, not {getattr(self, name)}")
        if self.timeout <= 0 or self.retries < 0 or self.backoff < 0:
            raise CollectError("timeout must be positive; retries and backoff not negative")


class _Retry(Exception):
    """A failure worth another attempt (timeout, connection error, 429 or 5xx, broken JSON)."""

    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait  # seconds the server asked for (Retry-After)


class _Unreadable(Exception):
    """A reply that is not a readable answer; recorded as a failure, retried on the next run."""


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds from a Retry-After header: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _text(content: object) -> tuple[str | None, str | None]:
    """(text, refusal) from a message's content: a string, a number, or a list of parts such as
    {"type": "text", "text": ...} and {"type": "refusal", "refusal": ...}."""
    if isinstance(content, str):
        return content, None
    if isinstance(content, int | float) and not isinstance(content, bool):
        return str(content), None
    if not isinstance(content, list):
        raise _Unreadable(f"message content of type {type(content).__name__}")
    texts, refusals = [], []
    for part in content:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and isinstance(part.get("text"), str):
            texts.append(part["text"])
        elif isinstance(part, dict) and isinstance(part.get("refusal"), str):
            refusals.append(part["refusal"])
        else:
            raise _Unreadable(f"a content part that holds no text: {str(part)[:80]}")
    return "".join(texts), ("".join(refusals) or None)


class OpenAIEngine:
    name = "openai"
    folds_system = False

    def __init__(self, model: str, generation: Generation, http: HttpSettings) -> None:
        self.model = model
        self.generation = generation
        self.http = http
        self.url = urllib.parse.urlsplit(http.base_url.rstrip("/") + "/chat/completions")
        if self.url.scheme not in ("http", "https") or not self.url.hostname:
            raise CollectError(f"--base-url must be an http(s) URL, not '{http.base_url}'")
        key_env = http.api_key_env or DEFAULT_KEY_ENV
        self._key = os.environ.get(key_env) or None  # never stored, printed or put in the manifest
        self.token_field = "max_completion_tokens"  # max_tokens for servers that reject it

    def _redact(self, text: str) -> str:
        if self._key:
            text = text.replace(self._key, "[redacted]")
        return _BEARER.sub(r"\1[redacted]", text)

    def _body(self, request: Request) -> dict:
        body = {
            "model": self.model,
            "messages": list(request.messages),
            "temperature": self.generation.temperature,
            self.token_field: self.generation.max_tokens,
            "seed": request.seed,
            "n": 1,
        }
        if self.generation.logprobs:
            body |= {"logprobs": True, "top_logprobs": self.generation.top_logprobs}
        return body

    def _connection(self) -> http.client.HTTPConnection:
        host, port, timeout = self.url.hostname, self.url.port, self.http.timeout
        if self.url.scheme == "https":
            context = ssl.create_default_context()
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _post(self, body: dict) -> dict:
        """One attempt, ended after `timeout` seconds however the server behaves."""
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        connection = self._connection()
        expired = threading.Event()

        def expire() -> None:  # shutting the socket down wakes a thread blocked reading it
            expired.set()
            if connection.sock is not None:
                with contextlib.suppress(OSError):
                    connection.sock.shutdown(socket.SHUT_RDWR)

        watchdog = threading.Timer(self.http.timeout, expire)
        watchdog.daemon = True
        watchdog.start()
        try:
            path = self.url.path + (f"?{self.url.query}" if self.url.query else "")
            connection.request("POST", path, json.dumps(body).encode(), headers)
            reply = connection.getresponse()
            data = self._read(reply, expired)
        except (OSError, http.client.HTTPException) as error:
            if expired.is_set():
                raise _Retry(f"no complete reply within {self.http.timeout:g} s") from None
            raise _Retry(self._redact(f"{type(error).__name__}: {error}")) from None
        finally:
            watchdog.cancel()
            connection.close()
        if expired.is_set():
            raise _Retry(f"no complete reply within {self.http.timeout:g} s")
        if reply.status != 200:
            # Redacted before it is cut, so a key split at the cut cannot leave a readable part.
            detail = self._redact(data.decode(errors="replace"))[:300]
            message = f"HTTP {reply.status}: {detail}"
            if reply.status in RETRIED_STATUS:
                raise _Retry(message, retry_after_seconds(reply.getheader("Retry-After")))
            raise RuntimeError(message)
        try:
            return json.loads(data)
        except ValueError as error:
            raise _Retry(f"the reply is not JSON ({error})") from None

    def _read(self, reply: http.client.HTTPResponse, expired: threading.Event) -> bytes:
        chunks, size = [], 0
        while not expired.is_set():
            chunk = reply.read1(_CHUNK)
            if not chunk:
                break
            size += len(chunk)
            if size > self.http.max_reply_bytes:
                raise _Unreadable(f"reply over {self.http.max_reply_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _response(self, reply: dict, request: Request) -> Response:
        try:
            choice = reply["choices"][0]
            message = choice["message"]
        except (KeyError, IndexError, TypeError) as error:
            raise _Unreadable(f"no choices[0].message in the reply ({error!r})") from None
        content, refusal = message.get("content"), message.get("refusal")
        finish = choice.get("finish_reason")
        finish = finish if isinstance(finish, str) else None
        usage = reply.get("usage") if isinstance(reply.get("usage"), dict) else {}
        tokens = usage.get("completion_tokens")
        counted = {
            "finish_reason": finish,
            "completion_tokens": tokens if type(tokens) is int else None,
        }
        text, part_refusal = _text(content) if content is not None else (None, None)
        refusal = refusal if isinstance(refusal, str) and refusal else part_refusal
        if refusal and not text:
            return Response(self._redact(refusal), refused=True, **counted)
        if text is None:
            if finish != "length":
                raise _Unreadable("the message has neither content nor a refusal")
            text = ""  # the whole budget went before any answer (e.g. to reasoning)
        text = self._redact(text)
        if not self.generation.logprobs:
            return Response(text, **counted)
        steps = (choice.get("logprobs") or {}).get("content") or []
        sampled = [step["token"] for step in steps]
        alternatives = []
        for step in steps:
            top = [(alt["token"], alt["logprob"]) for alt in step.get("top_logprobs", [])]
            if all(token != step["token"] for token, _ in top):
                top.append((step["token"], step["logprob"]))
            alternatives.append(top)
        p_a, mass = label_probability(sampled, alternatives, request.template.labels)
        return Response(text, p_a, mass, **counted)

    def _one(self, request: Request) -> Response:
        jitter = random.Random(request.seed)  # seeded: the same waits on every rerun
        failure: _Retry | None = None
        attempt = 0
        while attempt <= self.http.retries:
            if failure is not None:
                wait = jitter.uniform(
                    0, min(self.http.max_backoff, self.http.backoff * 2 ** (attempt - 1))
                )
                if failure.wait is not None:  # never sooner than the server asked
                    if failure.wait > self.http.max_backoff:
                        return Response(error=f"{failure} (asked to wait {failure.wait:g} s)")
                    wait = failure.wait + wait / 4
                time.sleep(wait)
            body = self._body(request)
            try:
                return self._response(self._post(body), request)
            except _Retry as error:
                failure = error
            except RuntimeError as error:
                # A server that only takes the older max_tokens: switch and ask again at once.
                if "max_completion_tokens" in body and "max_completion_tokens" in str(error):
                    self.token_field = "max_tokens"
                    continue
                return Response(error=str(error))
            except (_Unreadable, KeyError, IndexError, TypeError, ValueError) as error:
                return Response(error=self._redact(f"unreadable reply: {error}"))
            attempt += 1
        return Response(error=f"gave up after {self.http.retries + 1} attempts: {failure}")

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        with ThreadPoolExecutor(max_workers=self.http.concurrency) as pool:
            return list(pool.map(self._one, requests))
