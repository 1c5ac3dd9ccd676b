"""Engines answer chat requests: vLLM, transformers, an OpenAI-compatible server, or a simulator.
Each is imported only when chosen, so torch and vLLM stay optional."""

from __future__ import annotations

from dataclasses import dataclass, field

from bayespref.collect.engines.base import Engine, Generation, Request, Response
from bayespref.collect.engines.openai import HttpSettings
from bayespref.collect.engines.vllm import VllmSettings
from bayespref.errors import CollectError

ENGINES = ("vllm", "transformers", "openai", "simulated")

__all__ = [
    "ENGINES",
    "Engine",
    "EngineOptions",
    "Generation",
    "HttpSettings",
    "Request",
    "Response",
    "VllmSettings",
    "make_engine",
]


@dataclass(frozen=True)
class EngineOptions:
    """How to reach or run the engine; none of these changes an answer's content."""

    http: HttpSettings = field(default_factory=HttpSettings)  # openai
    vllm: VllmSettings = field(default_factory=VllmSettings)
    device: str | None = None  # transformers: device_map ("cpu", "cuda", ...); default "auto"
    dtype: str | None = None  # transformers: default bfloat16 on a GPU, float32 on a CPU
    micro_batch: int = 8  # transformers: requests generated together
    latency: float = 0.0  # simulated: seconds per batch
    truth: str | None = None  # simulated: a `bayespref simulate` folder


def make_engine(
    engine: str, model: str, generation: Generation, options: EngineOptions, seed: int = 0
) -> Engine:
    """Start the named engine (this is where a model is loaded)."""
    if engine == "simulated":
        from bayespref.collect.engines.simulated import read_truth
        from bayespref.collect.engines.simulated_authors import AuthorJudgeSimulator

        if options.truth is None:
            raise CollectError("the simulated engine needs a truth folder (--truth)")
        _, truth, parameters = read_truth(options.truth)
        return AuthorJudgeSimulator(truth, parameters, generation, options.latency, model)
    if engine == "openai":
        from bayespref.collect.engines.openai import OpenAIEngine

        return OpenAIEngine(model, generation, options.http)
    if engine == "vllm":
        from bayespref.collect.engines.vllm import VllmEngine

        return VllmEngine(model, generation, options.vllm, seed)
    if engine == "transformers":
        from bayespref.collect.engines.transformers import TransformersEngine

        return TransformersEngine(
            model, generation, options.device, options.dtype, options.micro_batch
        )
    raise CollectError(f"unknown engine '{engine}'; choose one of {', '.join(ENGINES)}")
