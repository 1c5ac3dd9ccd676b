"""vLLM's offline engine (`vllm.LLM`) on local GPUs; vLLM is imported only when this engine
starts.

For a large model on a given GPU, `VllmSettings` caps the context (`max_model_len`: a 27B model's
128k default may leave no room for its KV cache), the share of GPU memory vLLM takes, the weights'
dtype and quantization. A chat template file replaces the model's own. When the template has no
system role, the system prompt is sent at the top of the first user message instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bayespref.collect.engines.base import (
    Generation,
    Request,
    Response,
    fold_system,
    import_extra,
    label_probability,
    template_has_system_role,
)
from bayespref.errors import CollectError


@dataclass(frozen=True)
class VllmSettings:
    tensor_parallel_size: int = 1
    max_model_len: int | None = None  # None: the model's own context length
    gpu_memory_utilization: float = 0.9  # vLLM's default share
    dtype: str = "auto"
    quantization: str | None = None  # "awq", "gptq", "fp8", ...; None: as the checkpoint says
    trust_remote_code: bool = False
    chat_template: str | None = None  # a Jinja file replacing the model's chat template

    def __post_init__(self) -> None:
        if not 0 < self.gpu_memory_utilization <= 1:
            raise CollectError(
                f"gpu_memory_utilization must be in (0, 1], not {self.gpu_memory_utilization}"
            )
        if self.tensor_parallel_size < 1:
            raise CollectError(
                f"tensor_parallel_size must be at least 1, not {self.tensor_parallel_size}"
            )
        if self.max_model_len is not None and self.max_model_len < 1:
            raise CollectError(f"max_model_len must be at least 1, not {self.max_model_len}")


def read_chat_template(path: str | None) -> str | None:
    """The template's text (vLLM takes the text, not a path)."""
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CollectError(f"{path}: cannot read the chat template ({error})") from error


class VllmEngine:
    name = "vllm"

    def __init__(
        self,
        model: str,
        generation: Generation,
        settings: VllmSettings | None = None,
        seed: int = 0,
    ) -> None:
        (vllm,) = import_extra(
            ["vllm"], "the vllm engine needs vLLM", "'bayespref[vllm]' (on a GPU machine)"
        )
        settings = settings or VllmSettings()
        self.vllm = vllm
        self.generation = generation
        self.chat_template = read_chat_template(settings.chat_template)
        extra = {} if settings.max_model_len is None else {"max_model_len": settings.max_model_len}
        self.llm = vllm.LLM(
            model=model,
            tensor_parallel_size=settings.tensor_parallel_size,
            dtype=settings.dtype,
            quantization=settings.quantization,
            trust_remote_code=settings.trust_remote_code,
            gpu_memory_utilization=settings.gpu_memory_utilization,
            seed=seed,
            **extra,  # an EngineArgs field, passed through LLM's **kwargs
        )
        tokenizer = self.llm.get_tokenizer()
        self.folds_system = not template_has_system_role(
            lambda messages: tokenizer.apply_chat_template(
                messages,
                chat_template=self.chat_template,
                add_generation_prompt=True,
                tokenize=False,
            )
        )

    def _params(self, request: Request) -> object:  # a vllm.SamplingParams
        return self.vllm.SamplingParams(
            n=1,
            temperature=self.generation.temperature,
            seed=request.seed,
            max_tokens=self.generation.max_tokens,
            logprobs=self.generation.top_logprobs if self.generation.logprobs else None,
        )

    def _response(self, output, request: Request) -> Response:
        completion = output.outputs[0]
        finish, tokens = completion.finish_reason, len(completion.token_ids)
        if not self.generation.logprobs or not completion.logprobs:
            return Response(completion.text, finish_reason=finish, completion_tokens=tokens)
        # Each step maps token id -> Logprob and includes the sampled token.
        steps = completion.logprobs
        sampled = [
            step[token].decoded_token or ""
            for token, step in zip(completion.token_ids, steps, strict=False)
        ]
        alternatives = [
            [(logprob.decoded_token or "", logprob.logprob) for logprob in step.values()]
            for step in steps
        ]
        p_a, mass = label_probability(sampled, alternatives, request.template.labels)
        return Response(completion.text, p_a, mass, finish_reason=finish, completion_tokens=tokens)

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        conversations = [list(request.messages) for request in requests]
        if self.folds_system:
            conversations = [fold_system(messages) for messages in conversations]
        outputs = self.llm.chat(
            conversations,
            sampling_params=[self._params(request) for request in requests],
            use_tqdm=False,
            chat_template=self.chat_template,
        )
        return [
            self._response(output, request)
            for output, request in zip(outputs, requests, strict=True)
        ]
