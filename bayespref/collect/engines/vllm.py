"""vLLM's offline engine (`vllm.LLM`) on local GPUs; vLLM is imported only when this engine
starts."""

from __future__ import annotations

from collections.abc import Sequence

from bayespref.collect.engines.base import Generation, Request, Response, label_probability


class VllmEngine:
    name = "vllm"

    def __init__(
        self, model: str, generation: Generation, tensor_parallel_size: int = 1, seed: int = 0
    ) -> None:
        try:
            import vllm
        except ImportError as error:
            raise RuntimeError(
                "the vllm engine needs vLLM: pip install 'bayespref[vllm]' (on a GPU machine)"
            ) from error
        self.vllm = vllm
        self.generation = generation
        self.llm = vllm.LLM(model=model, tensor_parallel_size=tensor_parallel_size, seed=seed)

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
        if not self.generation.logprobs or not completion.logprobs:
            return Response(completion.text)
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
        return Response(completion.text, p_a, mass)

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        outputs = self.llm.chat(
            [list(request.messages) for request in requests],
            sampling_params=[self._params(request) for request in requests],
            use_tqdm=False,
        )
        return [
            self._response(output, request)
            for output, request in zip(outputs, requests, strict=True)
        ]
