from __future__ import annotations

import pytest

from bayespref.errors import SpecError
from bayespref.model.spec import ModelSpec, available_models, resolve_spec


def test_default_and_named_models_resolve():
    default = resolve_spec(None)
    assert default.name == "beta-binomial-pair"
    assert (default.noise, default.position, default.hierarchy, default.overdispersion) == (
        "per-dataset",
        "per-dataset-pair",
        "dataset",
        "beta-binomial",
    )
    # the dataclass's defaults are `beta-binomial`'s terms (the default before) but its cells: a
    # spec file that names no overdispersion keeps binomial cells, and one that names no
    # position keeps a term per dataset, as it had when it was written
    before = resolve_spec("beta-binomial")
    terms = {"name": before.name, "description": before.description}
    assert ModelSpec(**terms, overdispersion="beta-binomial") == before
    assert resolve_spec("position-by-dataset").overdispersion == "none"
    assert {
        "hierarchical",
        "thurstone",
        "thurstone-sigma",
        "position",
        "position-by-dataset",
    } <= set(available_models())
    assert resolve_spec("thurstone").noise == "shared"


def test_unknown_key_and_bad_value_name_the_file(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('noise = "per-task"\nlinks = "probit"\n')
    with pytest.raises(SpecError, match=r"mine.toml: unknown key 'links'"):
        resolve_spec(path)
    path.write_text('noise = "per-item"\n')
    with pytest.raises(SpecError, match=r"mine.toml: .*noise = 'per-item' is not one of"):
        resolve_spec(path)
    path.write_text("noise = [1\n")
    with pytest.raises(SpecError, match="not valid TOML"):
        resolve_spec(path)
    with pytest.raises(SpecError, match="unknown model 'nope'"):
        resolve_spec("nope")


def test_user_file_takes_its_name_and_hash_tracks_content(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('noise = "per-task"\n')
    spec = resolve_spec(path)
    assert spec.name == "mine" and spec.noise == "per-task"
    assert spec.hash == ModelSpec(name="mine", noise="per-task").hash
    assert spec.hash != ModelSpec(name="mine", noise="shared").hash


def test_a_folder_named_like_a_model_does_not_shadow_it(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "refusal").mkdir()
    assert resolve_spec("refusal").refusal == "modelled"
    with pytest.raises(SpecError, match="no such model file"):
        resolve_spec("missing/model.toml")
