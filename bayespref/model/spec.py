"""ModelSpec: which terms a Thurstonian model has, read from TOML files in `models/`."""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from bayespref.errors import SpecError
from bayespref.model.repeats import BETA_BINOMIAL

DEFAULT_MODEL = "beta-binomial-pair"  # benchmarks/real.py: README, "Real data"

OPTIONS: dict[str, tuple[str, ...]] = {
    "link": ("probit", "logit"),
    "noise": ("shared", "per-dataset", "per-task"),
    "position": ("none", "global", "per-dataset", "per-dataset-pair"),
    "hierarchy": ("none", "dataset"),
    "parameterization": ("centered", "non-centered"),
    "refusal": ("excluded", "modelled", "second-wins"),
    "conditions": ("pooled", "shifts"),
    "lapse": ("none", "estimated", "per-task"),
    "overdispersion": (
        "none",
        "pair",
        "pair-by-dataset",
        "pair-by-task",
        "beta-binomial",
        "beta-binomial-by-task",
    ),
}
# Keys added after fits were saved: left out of a spec's dict (and hash) at their default, so
# those fits still load.
LATER_KEYS = {"overdispersion": "none"}


@dataclass(frozen=True)
class ModelSpec:
    """The structure of a Thurstonian choice model (docs/architecture.md, "Model family")."""

    name: str = "custom"
    description: str = ""
    link: str = "probit"
    noise: str = "per-dataset"
    position: str = "per-dataset"
    hierarchy: str = "dataset"
    parameterization: str = "centered"
    refusal: str = "excluded"
    conditions: str = "pooled"
    lapse: str = "none"
    overdispersion: str = "none"

    def __post_init__(self) -> None:
        for key, allowed in OPTIONS.items():
            if getattr(self, key) not in allowed:
                raise SpecError(
                    f"model '{self.name}': {key} = '{getattr(self, key)}' is not one of "
                    f"{', '.join(allowed)}"
                )
        if self.overdispersion != "none" and self.link != "probit":
            raise SpecError(
                f"model '{self.name}': overdispersion = '{self.overdispersion}' needs link = "
                "'probit' (predictions integrate the pair effect out in closed form)"
            )
        if self.overdispersion in BETA_BINOMIAL and self.lapse != "none":
            raise SpecError(
                f"model '{self.name}': overdispersion = '{self.overdispersion}' takes no lapse "
                f"term (lapse = '{self.lapse}'): its cells' probabilities already stray from "
                "P(first)"
            )

    def to_dict(self) -> dict[str, str]:
        values = asdict(self)
        return {k: v for k, v in values.items() if LATER_KEYS.get(k, object()) != v}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def hash(self) -> str:
        return hashlib.sha256(self.to_json().encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, values: dict, source: str = "<spec>") -> ModelSpec:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise SpecError(
                f"{source}: unknown key '{unknown[0]}' (known keys: {', '.join(sorted(known))})"
            )
        for key, value in values.items():
            if not isinstance(value, str):
                raise SpecError(f"{source}: key '{key}' must be a string, got {value!r}")
        try:
            return cls(**values)
        except SpecError as error:
            raise SpecError(f"{source}: {error}") from error

    @classmethod
    def from_toml(cls, path: str | Path) -> ModelSpec:
        path = Path(path)
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except UnicodeDecodeError as error:
            raise SpecError(
                f"{path}: bytes that are not UTF-8 at byte {error.start}; save the file as UTF-8"
            ) from error
        except tomllib.TOMLDecodeError as error:
            raise SpecError(f"{path}: not valid TOML ({error})") from error
        values.setdefault("name", path.stem)
        return cls.from_dict(values, str(path))


def models_dir() -> Path:
    """The named model specs: inside the installed package, or `models/` of a source checkout."""
    package = Path(__file__).resolve().parents[1]  # bayespref/
    for candidate in (package / "models", package.parent / "models"):
        if candidate.is_dir():
            return candidate
    raise SpecError("the named model specs folder (models/) is missing from this installation")


def available_models() -> list[str]:
    return sorted(path.stem for path in models_dir().glob("*.toml"))


def resolve_spec(model: str | Path | ModelSpec | None = None) -> ModelSpec:
    """A ModelSpec from a spec, a name in `models/`, or a path to a TOML file."""
    if isinstance(model, ModelSpec):
        return model
    model = model or DEFAULT_MODEL
    path = Path(model)
    # A bare name is a named model even when a folder of that name happens to exist here.
    if path.suffix == ".toml" or len(path.parts) > 1:
        if not path.is_file():
            raise SpecError(f"{path}: no such model file")
        return ModelSpec.from_toml(path)
    named = models_dir() / f"{model}.toml"
    if not named.exists():
        raise SpecError(f"unknown model '{model}'; named models: {', '.join(available_models())}")
    return ModelSpec.from_toml(named)
