from __future__ import annotations

import itertools

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.special import betaln, gammaln, log_ndtr, ndtr
from scipy.stats import betabinom

import bayespref as bp
from bayespref.model.builder import build_model
from bayespref.model.likelihood import SUMMED_REPEATS
from bayespref.model.overdispersion import (
    beta_binomial_choice_logp,
    beta_binomial_choice_random,
)
from bayespref.model.spec import OPTIONS, ModelSpec


def evaluate(model, names: list[str], point: dict) -> list[np.ndarray]:
    """Model variables at a point of the (unconstrained) value variables."""
    outputs = model.replace_rvs_by_values([model[name] for name in names])
    function = pytensor.function(model.value_vars, outputs, on_unused_input="ignore")
    return function(*[point[v.name] for v in model.value_vars])


@pytest.fixture(scope="module")
def tiny_data():
    simulation = bp.simulate(n_tasks=12, n_datasets=3, n_comparisons=60, repeats=2, seed=0)
    return simulation, bp.load_choice_data(simulation.comparisons, simulation.tasks)


@pytest.mark.parametrize(
    ("noise", "position", "hierarchy", "link"),
    [
        (noise, position, hierarchy, "probit" if hierarchy == "dataset" else "logit")
        for noise, position, hierarchy in itertools.product(
            OPTIONS["noise"], OPTIONS["position"], OPTIONS["hierarchy"]
        )
    ],
)
def test_every_spec_builds_with_named_coords_and_finite_logp(
    tiny_data, noise, position, hierarchy, link
):
    _, data = tiny_data
    parameterization = "non-centered" if noise == "shared" else "centered"
    spec = ModelSpec(
        noise=noise,
        position=position,
        hierarchy=hierarchy,
        link=link,
        parameterization=parameterization,
    )
    model = build_model(spec, data)
    assert list(model.coords["task"]) == data.tasks["task_id"].tolist()
    assert list(model.coords["dataset"]) == data.datasets
    names = set(model.named_vars)
    assert "mu" in names
    assert ("position_bias" in names) == (position != "none")
    assert ("position_bias_dataset" in names) == position.startswith("per-dataset")
    assert ("position_bias_pair" in names) == (position == "per-dataset-pair")
    assert ("sigma" in names) == (noise == "per-task")
    assert ("sigma_dataset" in names) == (noise != "shared")
    assert ("dataset_mean" in names) == (hierarchy == "dataset")
    assert np.isfinite(model.compile_logp()(model.initial_point()))


def test_likelihood_equals_direct_binomial_probit_computation(tiny_data):
    simulation, data = tiny_data
    spec = ModelSpec(noise="per-task", position="per-dataset")
    model = build_model(spec, data)
    point = model.initial_point()
    rng = np.random.default_rng(0)
    point = {name: value + rng.normal(0, 0.3, np.shape(value)) for name, value in point.items()}
    mu, sigma, bias = evaluate(model, ["mu", "sigma", "position_bias_dataset"], point)
    cells = data.cells
    a, b, n, k = (cells[c].to_numpy() for c in ("a_idx", "b_idx", "n", "k"))
    td = data.task_dataset_idx
    z = (mu[a] - mu[b] + (bias[td[a]] + bias[td[b]]) / 2) / np.hypot(sigma[a], sigma[b])
    log_coefficient = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    expected = log_coefficient + k * log_ndtr(z) + (n - k) * log_ndtr(-z)
    observed = model.compile_logp(vars=[model["first_chosen"]], sum=False)(point)[0]
    np.testing.assert_allclose(observed, expected, rtol=1e-9)


def test_pair_position_term_is_the_datasets_mean_plus_a_doubly_centred_interaction(tiny_data):
    _, data = tiny_data
    model = build_model(ModelSpec(position="per-dataset-pair"), data)
    rng = np.random.default_rng(2)
    point = {n: v + rng.normal(0, 0.5, np.shape(v)) for n, v in model.initial_point().items()}
    mu, sigma, by_dataset, pair = evaluate(
        model, ["mu", "sigma_dataset", "position_bias_dataset", "position_bias_pair"], point
    )
    interaction = pair - (by_dataset[:, None] + by_dataset[None, :]) / 2
    assert np.abs(interaction).max() > 0.01
    np.testing.assert_allclose(interaction.sum(axis=0), 0, atol=1e-9)
    np.testing.assert_allclose(interaction.sum(axis=1), 0, atol=1e-9)
    cells = data.cells
    a, b, n, k = (cells[c].to_numpy() for c in ("a_idx", "b_idx", "n", "k"))
    td = data.task_dataset_idx
    z = (mu[a] - mu[b] + pair[td[a], td[b]]) / np.hypot(sigma[td[a]], sigma[td[b]])
    log_coefficient = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    expected = log_coefficient + k * log_ndtr(z) + (n - k) * log_ndtr(-z)
    observed = model.compile_logp(vars=[model["first_chosen"]], sum=False)(point)[0]
    np.testing.assert_allclose(observed, expected, rtol=1e-9, atol=1e-12)


def test_jax_logp_matches_pytensor_logp(tiny_data):
    from pymc.sampling.jax import get_jaxified_logp

    _, data = tiny_data
    model = build_model(ModelSpec(noise="per-task", position="per-dataset"), data)
    point = model.initial_point()
    jax_logp = get_jaxified_logp(model)([point[v.name] for v in model.value_vars])
    assert float(jax_logp) == pytest.approx(float(model.compile_logp()(point)), rel=1e-10)


def test_dataset_means_are_exactly_the_mean_utility_of_their_tasks(tiny_data):
    _, data = tiny_data
    model = build_model(ModelSpec(), data)
    point = {
        n: v + np.random.default_rng(1).normal(size=np.shape(v))
        for n, v in model.initial_point().items()
    }
    mu, mean = evaluate(model, ["mu", "dataset_mean"], point)
    by_dataset = np.bincount(data.task_dataset_idx, mu) / np.bincount(data.task_dataset_idx)
    np.testing.assert_allclose(by_dataset, mean, atol=1e-12)
    assert abs(mean.sum()) < 1e-12


def test_zero_sum_within_maps_free_coordinates_isometrically_onto_group_zero_sums():
    import pytensor.tensor as pt

    from bayespref.model.zero_sum import dependent_of_group, zero_sum_within

    group = np.array([0, 1, 0, 2, 1, 0, 0, 2, 1, 1, 3])
    anchoring = np.array([3, 0, 5, 1, 2, 5, 0, 1, 0, 7, 0])
    dependent = dependent_of_group(group, anchoring)
    # the best-anchored task of each group, the first on ties
    assert np.flatnonzero(dependent).tolist() == [2, 3, 9, 10]
    n_free = int((~dependent).sum())
    assert n_free == len(group) - 4
    free = pt.vector("free")
    mapping = pytensor.function([free], zero_sum_within(free, group, dependent, 4))
    images = np.stack([mapping(row) for row in np.eye(n_free)])
    for image in images:
        np.testing.assert_allclose(np.bincount(group, image, minlength=4), 0, atol=1e-12)
    # Orthonormal images: iid normal free coordinates give iid normals conditioned on zero sums.
    np.testing.assert_allclose(images @ images.T, np.eye(n_free), atol=1e-12)
    # Rows of a matrix (conditions' deviations) are mapped one by one.
    rows = pt.matrix("rows")
    by_row = pytensor.function([rows], zero_sum_within(rows, group, dependent, 4))
    values = np.random.default_rng(0).normal(size=(3, n_free))
    np.testing.assert_allclose(by_row(values), [mapping(row) for row in values], atol=1e-12)
    # A group without tasks changes nothing; in float32 the map stays in float32.
    with_empty = pytensor.function([free], zero_sum_within(free, group, dependent, 6))
    np.testing.assert_allclose(with_empty(values[0]), mapping(values[0]), atol=1e-12)
    with pytensor.config.change_flags(floatX="float32"):
        single = pt.vector("single", dtype="float32")
        image = zero_sum_within(single, group, dependent, 4)
        assert image.dtype == "float32"
        mapped = pytensor.function([single], image)(values[0].astype(np.float32))
    np.testing.assert_allclose(mapped, mapping(values[0]), atol=1e-5)


@pytest.mark.parametrize("parameterization", ["centered", "non-centered"])
def test_hierarchy_prior_is_normal_deviations_around_zero_sum_dataset_means(parameterization):
    """Both parameterisations draw the same prior: dataset means ~ ZeroSumNormal(5), and given
    the spreads, deviations with the law of Normal(0, spread) draws centred within datasets."""
    import pymc as pm

    simulation = bp.simulate(n_tasks=40, n_datasets=4, n_comparisons=200, seed=0)
    data = bp.load_choice_data(simulation.comparisons, simulation.tasks)
    model = build_model(ModelSpec(parameterization=parameterization), data)
    prior = pm.sample_prior_predictive(draws=4000, model=model, random_seed=1)["prior"]
    mean = prior["dataset_mean"].values.reshape(-1, 4)
    np.testing.assert_allclose(mean.sum(axis=1), 0, atol=1e-9)
    assert np.std(mean, axis=0) == pytest.approx(np.full(4, 5 * np.sqrt(3 / 4)), rel=0.05)
    group = data.task_dataset_idx
    spread = prior["dataset_spread"].values.reshape(-1, 4)[:, group]
    deviation = prior["mu"].values.reshape(-1, 40) - mean[:, group]
    standardised = deviation / spread
    counts = np.bincount(group)[group]
    # A deviation centred within a group of n has variance spread^2 (1 - 1/n).
    assert np.std(standardised, axis=0) == pytest.approx(np.sqrt(1 - 1 / counts), rel=0.06)
    assert np.mean(standardised, axis=0) == pytest.approx(np.zeros(40), abs=0.06)


@pytest.mark.parametrize(
    "overdispersion, noise",
    [
        ("pair", "per-dataset"),
        ("pair-by-dataset", "per-dataset"),
        ("pair-by-task", "per-dataset"),
        ("pair", "per-task"),
    ],
)
def test_pair_effect_is_shared_by_both_orders_and_every_repeat_of_a_pair(overdispersion, noise):
    simulation = bp.simulate(n_tasks=12, n_datasets=3, n_comparisons=120, repeats=6, seed=0)
    data = bp.load_choice_data(simulation.comparisons, simulation.tasks)
    cells = data.cells
    assert (cells.groupby(["a_idx", "b_idx"]).size() == 1).all()
    spec = ModelSpec(overdispersion=overdispersion, position="global", noise=noise)
    model = build_model(spec, data)
    rng = np.random.default_rng(0)
    point = {n: v + rng.normal(0, 0.5, np.shape(v)) for n, v in model.initial_point().items()}
    sd_name = {"pair": "pair_sd", "pair-by-dataset": "pair_sd_dataset"}.get(
        overdispersion, "pair_sd_task"
    )
    noise_name = "sigma" if noise == "per-task" else "sigma_dataset"
    mu, sigma, bias, offset, pair_sd = evaluate(
        model, ["mu", noise_name, "position_bias", "pair_offset", sd_name], point
    )
    a, b, n, k = (cells[c].to_numpy() for c in ("a_idx", "b_idx", "n", "k"))
    td = data.task_dataset_idx
    pairs = {
        pair: i
        for i, pair in enumerate(
            sorted({(min(x, y), max(x, y)) for x, y in zip(a, b, strict=True)})
        )
    }
    assert len(offset) == len(pairs) < len(cells)  # some pairs were shown in both orders
    effect = np.array(
        [
            offset[pairs[(min(x, y), max(x, y))]] * (1 if x < y else -1)
            for x, y in zip(a, b, strict=True)
        ]
    )
    by_task = pair_sd[td] if overdispersion == "pair-by-dataset" else pair_sd
    sd = pair_sd if overdispersion == "pair" else np.sqrt((by_task[a] ** 2 + by_task[b] ** 2) / 2)
    task_sigma = sigma if noise == "per-task" else sigma[td]
    z = (mu[a] - mu[b] + bias + sd * effect) / np.hypot(task_sigma[a], task_sigma[b])
    expected = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    expected += k * log_ndtr(z) + (n - k) * log_ndtr(-z)
    observed = model.compile_logp(vars=[model["first_chosen"]], sum=False)(point)[0]
    np.testing.assert_allclose(observed, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("max_count", [None, 5], ids=["log-gamma", "summed"])
def test_beta_binomial_cells_equal_scipy_and_keep_far_tails(tiny_data, max_count):
    _, data = tiny_data
    assert data.cells["n"].max() <= SUMMED_REPEATS  # the model sums its rising factorials
    model = build_model(ModelSpec(overdispersion="beta-binomial"), data)
    rng = np.random.default_rng(6)
    point = {n: v + rng.normal(0, 0.5, np.shape(v)) for n, v in model.initial_point().items()}
    names = ["mu", "sigma_dataset", "position_bias_dataset", "concentration_dataset"]
    mu, sigma, bias, kappa = evaluate(model, names, point)
    cells, td = data.cells, data.task_dataset_idx
    a, b, n, k = (cells[c].to_numpy() for c in ("a_idx", "b_idx", "n", "k"))
    z = (mu[a] - mu[b] + (bias[td[a]] + bias[td[b]]) / 2) / np.hypot(sigma[td[a]], sigma[td[b]])
    concentration = np.sqrt(kappa[td[a]] * kappa[td[b]])
    p = ndtr(z)
    expected = betabinom.logpmf(k, n, concentration * p, concentration * (1 - p))
    observed = model.compile_logp(vars=[model["first_chosen"]], sum=False)(point)[0]
    np.testing.assert_allclose(observed, expected, rtol=1e-8, atol=1e-10)

    # Cells of up to 12 repeats (three blocks of summed factors), concentrations 0.01 to 1e4.
    n = rng.integers(0, 13, 200)
    k, z, kappa = rng.integers(0, n + 1), rng.normal(0, 2, 200), np.exp(rng.uniform(-4.6, 9.2, 200))
    p = ndtr(z)
    expected = betabinom.logpmf(k, n, kappa * p, kappa * (1 - p))
    coefficient = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    observed = beta_binomial_choice_logp(k, z, n, coefficient, kappa, max_count and 12).eval()
    # Differences of log-gammas near 10 lose about 1e-8 of their value at kappa 1e4.
    np.testing.assert_allclose(observed, expected, rtol=1e-7, atol=1e-9)

    # Far in the tail P(first) underflows as 1 - Phi(z); the cell's log-probability does not.
    k, z, n = np.array([3, 0, 2]), np.array([-30.0, -30.0, 12.0]), np.array([5, 5, 4])
    far = beta_binomial_choice_logp(k, z, n, 0.0, np.float64(2.0), max_count).eval()
    tiny = np.exp(log_ndtr(-12.0))
    expected = [
        # kappa = 2: alpha (alpha + 1) (alpha + 2) beta (beta + 1) / (2 x 3 x ... x 6)
        log_ndtr(-30.0) + np.log(2 * 2 * 6 / 720),  # 3 of 5 at P ~ 0: alpha ~ 2 P
        0.0,  # none of 5 at P ~ 0: certain
        np.log(2 * tiny) + np.log(6 / 120),  # 2 losses of 4 at 1 - P ~ 0
    ]
    np.testing.assert_allclose(far, expected, rtol=1e-6, atol=1e-9)
    # Where Phi(-z) underflows to 0 the value and gradient stay finite.
    z, kappa = pt.dvector("z"), pt.dscalar("kappa")
    total = beta_binomial_choice_logp(k, z, n, 0.0, kappa, max_count).sum()
    gradient = pytensor.function([z, kappa], pytensor.grad(total, [z, kappa]))
    assert all(np.isfinite(g).all() for g in gradient(np.array([-45.0, -45.0, 45.0]), 2.0))


def test_concentration_by_task_pools_around_its_dataset_and_enters_cells_as_geometric_mean(
    tiny_data,
):
    _, data = tiny_data
    model = build_model(ModelSpec(overdispersion="beta-binomial-by-task"), data)
    rng = np.random.default_rng(8)
    point = {n: v + rng.normal(0, 0.7, np.shape(v)) for n, v in model.initial_point().items()}
    names = ["mu", "sigma_dataset", "position_bias_dataset", "concentration_dataset"]
    mu, sigma, bias, kappa_dataset, kappa = evaluate(model, [*names, "concentration_task"], point)
    td = data.task_dataset_idx
    for dataset in range(len(data.datasets)):
        mine = np.log(kappa[td == dataset])
        assert mine.std() > 0.05  # tasks differ
        assert np.exp(mine.mean()) == pytest.approx(kappa_dataset[dataset], rel=1e-9)
    cells = data.cells
    a, b, n, k = (cells[c].to_numpy() for c in ("a_idx", "b_idx", "n", "k"))
    z = (mu[a] - mu[b] + (bias[td[a]] + bias[td[b]]) / 2) / np.hypot(sigma[td[a]], sigma[td[b]])
    concentration, p = np.sqrt(kappa[a] * kappa[b]), ndtr(z)
    expected = betabinom.logpmf(k, n, concentration * p, concentration * (1 - p))
    observed = model.compile_logp(vars=[model["first_chosen"]], sum=False)(point)[0]
    np.testing.assert_allclose(observed, expected, rtol=1e-8, atol=1e-10)


def test_beta_binomial_replicates_are_more_often_unanimous_than_binomial_ones():
    rng = np.random.default_rng(7)
    z, n = np.full(20_000, 0.84), np.full(20_000, 5)  # P(first) = 0.8
    shared = beta_binomial_choice_random(z, n, 0.0, 1.0, rng=rng)
    unanimous = np.mean((shared == 0) | (shared == 5))
    # Beta(0.8, 0.2) shared by five trials: P(all the same) = 0.8 B(5.8, 0.2) / B(0.8, 0.2)
    # over 0.8, plus the same for losses.
    exact = np.exp(betaln(5.8, 0.2) - betaln(0.8, 0.2)) + np.exp(
        betaln(0.8, 5.2) - betaln(0.8, 0.2)
    )
    assert unanimous == pytest.approx(exact, abs=0.01)
    assert exact > 0.8**5 + 0.2**5 + 0.15
    assert shared.mean() / 5 == pytest.approx(0.8, abs=0.01)


def test_overdispersion_needs_probit_and_leaves_earlier_spec_hashes_alone():
    with pytest.raises(bp.SpecError, match="probit"):
        ModelSpec(overdispersion="pair", link="logit")
    assert "overdispersion" not in ModelSpec().to_dict()
    assert ModelSpec(overdispersion="pair").to_dict()["overdispersion"] == "pair"
    for cells in ("beta-binomial", "beta-binomial-by-task"):
        with pytest.raises(bp.SpecError, match=f"'{cells}' takes no lapse"):
            ModelSpec(name="mine", overdispersion=cells, lapse="per-task")


def test_per_task_noise_has_its_dataset_level_as_geometric_mean(tiny_data):
    _, data = tiny_data
    model = build_model(ModelSpec(noise="per-task"), data)
    rng = np.random.default_rng(3)
    point = {n: v + rng.normal(size=np.shape(v)) for n, v in model.initial_point().items()}
    sigma, sigma_dataset = evaluate(model, ["sigma", "sigma_dataset"], point)
    group = data.task_dataset_idx
    geometric = np.exp(np.bincount(group, np.log(sigma)) / np.bincount(group))
    np.testing.assert_allclose(geometric, sigma_dataset, rtol=1e-9)
    assert np.prod(sigma_dataset) == pytest.approx(1.0)
    assert np.std(np.log(sigma)) > 0.1  # the tasks do differ within datasets


def test_per_task_lapse_likelihood_equals_direct_computation(tiny_data):
    _, data = tiny_data
    model = build_model(ModelSpec(lapse="per-task"), data)
    rng = np.random.default_rng(4)
    point = {n: v + rng.normal(0, 0.5, np.shape(v)) for n, v in model.initial_point().items()}
    names = ["mu", "sigma_dataset", "position_bias_dataset", "lapse_task", "lapse_dataset"]
    mu, sigma, bias, lapse, lapse_dataset = evaluate(model, names, point)
    cells, td = data.cells, data.task_dataset_idx
    a, b, n, k = (cells[c].to_numpy() for c in ("a_idx", "b_idx", "n", "k"))
    z = (mu[a] - mu[b] + (bias[td[a]] + bias[td[b]]) / 2) / np.hypot(sigma[td[a]], sigma[td[b]])
    eps = (lapse[a] + lapse[b]) / 2
    p = eps / 2 + (1 - eps) * np.exp(log_ndtr(z))
    expected = gammaln(n + 1) - gammaln(k + 1) - gammaln(n - k + 1)
    expected += k * np.log(p) + (n - k) * np.log1p(-p)
    observed = model.compile_logp(vars=[model["first_chosen"]], sum=False)(point)[0]
    np.testing.assert_allclose(observed, expected, rtol=1e-8)
    np.testing.assert_allclose(lapse_dataset, np.bincount(td, lapse) / np.bincount(td))


def test_pair_sd_by_task_has_its_dataset_level_as_geometric_mean(tiny_data):
    _, data = tiny_data
    model = build_model(ModelSpec(overdispersion="pair-by-task"), data)
    rng = np.random.default_rng(5)
    point = {n: v + rng.normal(size=np.shape(v)) for n, v in model.initial_point().items()}
    by_task, by_dataset = evaluate(model, ["pair_sd_task", "pair_sd_dataset"], point)
    group = data.task_dataset_idx
    geometric = np.exp(np.bincount(group, np.log(by_task)) / np.bincount(group))
    np.testing.assert_allclose(geometric, by_dataset, rtol=1e-9)
    assert np.std(np.log(by_task)) > 0.1
