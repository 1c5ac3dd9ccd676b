"""Hugging Face transformers: batched generation with left padding, each request sampled from its
own seeded generator; for small models and checks without vLLM. torch and transformers are
imported when it starts.

`model` is a hub id, a local folder, or a `.gguf` file (read through transformers' GGUF
support, which needs the `gguf` package). Weights load with `device_map` ("auto" spreads a large
model over the GPUs and CPU memory without a float32 copy first) and in bfloat16 on a GPU, float32
on a CPU, unless `dtype` says otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
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

DTYPES = ("auto", "bfloat16", "float16", "float32")


class TransformersEngine:
    name = "transformers"

    def __init__(
        self,
        model: str,
        generation: Generation,
        device: str | None = None,
        dtype: str | None = None,
        batch_size: int = 8,
    ) -> None:
        torch, transformers = import_extra(
            ["torch", "transformers"],
            "the transformers engine needs torch and transformers",
            "'bayespref[torch]'",
        )
        if dtype is not None and dtype not in DTYPES:
            raise CollectError(f"unknown dtype '{dtype}'; choose one of {', '.join(DTYPES)}")
        if batch_size < 1:
            raise CollectError(f"the transformers batch size must be at least 1, not {batch_size}")
        self.torch = torch
        self.generation = generation
        self.batch_size = batch_size
        source, options = model, {}
        if model.endswith(".gguf"):
            source, options = str(Path(model).parent), {"gguf_file": Path(model).name}
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(source, **options)
        self.tokenizer.padding_side = "left"  # generated tokens must follow each prompt directly
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        on_gpu = str(device).startswith("cuda")
        gpu = on_gpu or (device in (None, "auto") and torch.cuda.is_available())
        chosen = dtype or ("bfloat16" if gpu else "float32")
        self.dtype = chosen
        self.model = transformers.AutoModelForCausalLM.from_pretrained(
            source,
            dtype=chosen if chosen == "auto" else getattr(torch, chosen),
            device_map=device or "auto",
            **options,
        ).eval()
        self.folds_system = not template_has_system_role(self._render)
        eos = self.model.generation_config.eos_token_id
        self.stop_ids = set(eos if isinstance(eos, list) else [eos]) - {None}

    def _render(self, messages: list[dict[str, str]]) -> str:
        return self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

    def _sampler(self, seeds: list[int]):
        """A logits processor that draws each row's next token from that row's own generator and
        leaves only it possible, so greedy decoding then takes it: a request's sample does not
        depend on which other requests share its batch."""
        torch = self.torch
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        temperature = self.generation.temperature

        def sample(input_ids, scores):
            probs = torch.softmax(scores.float().cpu() / temperature, dim=-1)
            chosen = [
                int(torch.multinomial(row, 1, generator=generator))
                for row, generator in zip(probs, generators, strict=True)
            ]
            only = torch.full_like(scores, float("-inf"))
            only[torch.arange(len(chosen)), torch.tensor(chosen)] = 0.0
            return only

        return sample

    def _batch(self, requests: Sequence[Request]) -> list[Response]:
        torch = self.torch
        from transformers import LogitsProcessorList

        conversations = [list(request.messages) for request in requests]
        if self.folds_system:
            conversations = [fold_system(messages) for messages in conversations]
        prompts = [self._render(messages) for messages in conversations]
        inputs = self.tokenizer(
            prompts, return_tensors="pt", padding=True, add_special_tokens=False
        ).to(self.model.device)
        sample = self.generation.temperature > 0
        processors = LogitsProcessorList(
            [self._sampler([request.seed for request in requests])] if sample else []
        )
        with torch.no_grad():
            output = self.model.generate(
                **inputs,
                do_sample=False,
                temperature=None,
                top_k=None,
                top_p=None,
                logits_processor=processors,
                max_new_tokens=self.generation.max_tokens,
                return_dict_in_generate=True,
                output_logits=self.generation.logprobs,
                pad_token_id=self.tokenizer.pad_token_id,
            )
        width = inputs["input_ids"].shape[1]
        responses = []
        for row, request in enumerate(requests):
            generated = output.sequences[row, width:].tolist()
            stop = next((i for i, token in enumerate(generated) if token in self.stop_ids), None)
            finish = "length" if stop is None else "stop"
            generated = generated if stop is None else generated[:stop]
            text = self.tokenizer.decode(generated, skip_special_tokens=True)
            if not self.generation.logprobs:
                responses.append(
                    Response(text, finish_reason=finish, completion_tokens=len(generated))
                )
                continue
            sampled = [self.tokenizer.decode([token]) for token in generated]
            alternatives = []
            for logits in output.logits[: len(generated)]:  # the model's own, before temperature
                top = torch.log_softmax(logits[row].float(), dim=-1).topk(
                    self.generation.top_logprobs
                )
                alternatives.append(
                    [
                        (self.tokenizer.decode([token]), value)
                        for value, token in zip(
                            top.values.tolist(), top.indices.tolist(), strict=True
                        )
                    ]
                )
            p_a, mass = label_probability(sampled, alternatives, request.template.labels)
            responses.append(
                Response(text, p_a, mass, finish_reason=finish, completion_tokens=len(generated))
            )
        return responses

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        responses = []
        for start in range(0, len(requests), self.batch_size):
            responses += self._batch(requests[start : start + self.batch_size])
        return responses
