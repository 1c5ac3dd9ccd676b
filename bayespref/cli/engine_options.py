"""The engine settings that `collect`, `complete` and `judge` all take, declared once."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from bayespref.collect.engines import ENGINES, EngineOptions, HttpSettings, VllmSettings
from bayespref.errors import CollectError

EngineName = Annotated[str, typer.Option(help=f"One of {', '.join(ENGINES)}.")]
BaseUrl = Annotated[str, typer.Option(help="OpenAI engine: the server's base URL.")]
ApiKeyEnv = Annotated[
    str | None,
    typer.Option(
        help="OpenAI engine: name of the environment variable holding the API key (it must "
        "be set); default OPENAI_API_KEY when set, else no key."
    ),
]
Concurrency = Annotated[int, typer.Option(min=1, help="OpenAI engine: requests in flight.")]
Timeout = Annotated[
    float, typer.Option(help="OpenAI engine: seconds for a whole attempt, reply included.")
]
Retries = Annotated[int, typer.Option(min=0, help="OpenAI engine: retries of a failed request.")]
TensorParallel = Annotated[int, typer.Option(min=1, help="vLLM engine: GPUs per model.")]
MaxModelLen = Annotated[
    int | None, typer.Option(help="vLLM engine: context length (default: the model's).")
]
GpuMemory = Annotated[float, typer.Option(help="vLLM engine: share of GPU memory to take.")]
Quantization = Annotated[
    str | None, typer.Option(help="vLLM engine: awq, gptq, fp8, ... (default: the model's).")
]
TrustRemoteCode = Annotated[
    bool, typer.Option(help="vLLM engine: run the model repository's own code.")
]
ChatTemplate = Annotated[
    Path | None, typer.Option(help="vLLM engine: a Jinja chat template file to use instead.")
]
Dtype = Annotated[
    str | None,
    typer.Option(
        help="vLLM and transformers: weights' dtype (auto, bfloat16, float16, float32); "
        "default auto for vLLM, bfloat16 on a GPU and float32 on a CPU for transformers."
    ),
]
Device = Annotated[
    str | None, typer.Option(help="Transformers engine: device map (cpu, cuda, ...; default auto).")
]
MicroBatch = Annotated[
    int, typer.Option(min=1, help="Transformers engine: requests generated together.")
]
Latency = Annotated[float, typer.Option(help="Simulated engine: seconds to wait per batch.")]


def check_engine(engine: str) -> None:
    if engine not in ENGINES:
        raise CollectError(f"unknown engine '{engine}'; choose one of {', '.join(ENGINES)}")


# One argument per engine setting, as the commands declare them.
def engine_options(
    *,
    base_url: str = HttpSettings.base_url,
    api_key_env: str | None = None,
    concurrency: int = HttpSettings.concurrency,
    timeout: float = HttpSettings.timeout,
    retries: int = HttpSettings.retries,
    tensor_parallel_size: int = 1,
    max_model_len: int | None = None,
    gpu_memory_utilization: float = VllmSettings.gpu_memory_utilization,
    quantization: str | None = None,
    trust_remote_code: bool = False,
    chat_template: Path | None = None,
    dtype: str | None = None,
    device: str | None = None,
    micro_batch: int = 8,
    latency: float = 0.0,
    truth: Path | None = None,
) -> EngineOptions:
    """The engines' settings from the command's options (each engine reads its own)."""
    return EngineOptions(
        http=HttpSettings(
            base_url=base_url,
            api_key_env=api_key_env,
            concurrency=concurrency,
            timeout=timeout,
            retries=retries,
        ),
        vllm=VllmSettings(
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            dtype=dtype or "auto",
            quantization=quantization,
            trust_remote_code=trust_remote_code,
            chat_template=str(chat_template) if chat_template else None,
        ),
        device=device,
        dtype=dtype,
        micro_batch=micro_batch,
        latency=latency,
        truth=str(truth) if truth else None,
    )


ENGINE_SETTINGS = frozenset(inspect.signature(engine_options).parameters)


def options_from(arguments: Mapping[str, object]) -> EngineOptions:
    """The engine settings among a command's arguments (pass its `locals()`)."""
    return engine_options(**{k: v for k, v in arguments.items() if k in ENGINE_SETTINGS})
