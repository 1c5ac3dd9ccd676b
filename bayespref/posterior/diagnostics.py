"""The diagnostics of a fit as types: what diagnostics.json holds, and its verdict."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class DataSummary:
    """What the fit saw: counts of trials, cells, tasks, datasets and conditions, and notes."""

    data_hash: str
    n_trials: int
    outcomes: dict[str, int]
    n_cells: int
    refusals: str  # how refusals entered the model
    n_tasks: int
    datasets: list[str]
    conditions: list[str]
    loo_unit: str
    notes: list[str] = field(default_factory=list)


@dataclass
class Diagnostics:
    """The verdict (`passed`, with `reasons` when not), the method's own measures (NUTS: r_hat,
    ESS, divergences, BFMI, tree depth; the Laplace approximation: its optimizer and Hessian),
    the sampler's settings and the data summary."""

    passed: bool
    reasons: list[str]
    measures: dict
    sampler: dict = field(default_factory=dict)
    data: DataSummary | None = None
    approximate: bool = False

    def to_dict(self) -> dict:
        """The layout of diagnostics.json: the measures at the top level beside the rest."""
        written = {**self.measures, "passed": self.passed, "reasons": self.reasons}
        if self.approximate:
            written["approximate"] = True
        written["sampler"] = self.sampler
        if self.data is not None:
            written["data"] = asdict(self.data)
        return written

    @classmethod
    def from_dict(cls, stored: dict) -> Diagnostics:
        measures = dict(stored)
        passed, reasons = measures.pop("passed"), measures.pop("reasons")
        sampler, data = measures.pop("sampler", {}), measures.pop("data", None)
        approximate = bool(measures.pop("approximate", False))
        return cls(
            passed=passed,
            reasons=reasons,
            measures=measures,
            sampler=sampler,
            data=None if data is None else DataSummary(**data),
            approximate=approximate,
        )
