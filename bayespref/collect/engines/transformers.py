"""Hugging Face transformers on one device, one request at a time (seeded per request); for
small models and checks without vLLM. torch and transformers are imported when it starts.

`model` is a hub id, a local folder, or a `.gguf` file (read through transformers' GGUF
support, which needs the `gguf` package).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from bayespref.collect.engines.base import Generation, Request, Response, label_probability


class TransformersEngine:
    name = "transformers"

    def __init__(self, model: str, generation: Generation, device: str | None = None) -> None:
        try:
            import torch
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as error:
            raise RuntimeError(
                "the transformers engine needs torch and transformers: "
                "pip install 'bayespref[torch]'"
            ) from error
        self.torch = torch
        self.generation = generation
        source, options = model, {}
        if model.endswith(".gguf"):
            source, options = str(Path(model).parent), {"gguf_file": Path(model).name}
        self.tokenizer = AutoTokenizer.from_pretrained(source, **options)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model = AutoModelForCausalLM.from_pretrained(source, **options).to(self.device).eval()

    def _one(self, request: Request) -> Response:
        torch = self.torch
        inputs = self.tokenizer.apply_chat_template(
            list(request.messages),
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        ).to(self.device)
        torch.manual_seed(request.seed)
        sample = self.generation.temperature > 0
        with torch.no_grad():
            output = self.model.generate(
                **inputs,
                do_sample=sample,
                temperature=self.generation.temperature if sample else None,
                top_k=0 if sample else None,
                top_p=1.0 if sample else None,
                max_new_tokens=self.generation.max_tokens,
                return_dict_in_generate=True,
                output_logits=self.generation.logprobs,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
            )
        generated = output.sequences[0, inputs["input_ids"].shape[1] :].tolist()
        text = self.tokenizer.decode(generated, skip_special_tokens=True)
        if not self.generation.logprobs:
            return Response(text)
        sampled = [self.tokenizer.decode([token]) for token in generated]
        alternatives = []
        for logits in output.logits:  # the model's own distribution, before temperature
            top = torch.log_softmax(logits[0].float(), dim=-1).topk(self.generation.top_logprobs)
            alternatives.append(
                [
                    (self.tokenizer.decode([token]), value)
                    for value, token in zip(top.values.tolist(), top.indices.tolist(), strict=True)
                ]
            )
        p_a, mass = label_probability(sampled, alternatives, request.template.labels)
        return Response(text, p_a, mass)

    def generate(self, requests: Sequence[Request]) -> list[Response]:
        return [self._one(request) for request in requests]
