"""The audit's published reference: the table of the zoo's ImageNet top-1, its specs, and the partial
correlation at equal latency on constructed data whose answer is known."""
import numpy as np
import pytest
from scipy import stats

from nas.audit.published import PUBLISHED_FILE, load_published
from nas.audit.ranks import partial_correlation, partial_tau_standard_error, residuals, tau_standard_error
from nas.core.counts import count_macs, count_params
from nas.core.model import build_model
from nas.core.spec_file import load_spec
from nas.runtime.errors import UserError
from helpers import REFERENCE

# docs/reference.md's zoo table (params) and the published top-1 / Pixel-1 ms the table must hold.
EXPECTED = {
    "mobilenetv3_large": (5_483_032, 75.2, 51.0),
    "mobilenetv3_large_075": (3_993_528, 73.3, 39.0),
    "mnasnet_a1": (3_887_038, 75.2, 71.0),
    "proxylessnas_mobile": (4_080_512, 74.6, 72.0),
    "mobilenetv2_100": (3_504_872, 72.0, 64.0),
    "mobilenetv3_small": (2_542_856, 67.4, 15.8),
    "mobilenetv3_small_075": (2_041_872, 65.4, 12.8),
    "mnasnet_small": (2_030_264, 64.9, 20.3),
    "mobilenetv2_035": (1_677_128, 60.8, 16.6),
    "mobilenetv3_large_minimalistic": (3_924_288, 72.3, 44.1),
    "mobilenetv3_small_minimalistic": (2_044_736, 61.9, 12.2),
    "mobilenetv3_large_relu": (5_483_032, 74.5, 50.5),
}


def test_published_table_holds_the_twelve_networks():
    table = load_published()
    assert {p.spec_name: (p.top1, p.pixel1_ms) for p in table} == {k: v[1:] for k, v in EXPECTED.items()}
    assert all(p.source and p.network for p in table)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_published_specs_build_with_the_zoo_params(name):
    entry = next(p for p in load_published() if p.spec_name == name)
    spec = entry.spec()
    assert count_params(spec) == EXPECTED[name][0]
    assert sum(p.numel() for p in build_model(spec).parameters()) == EXPECTED[name][0]


def test_all_relu_large_is_large_with_relu():
    large, relu = load_spec(REFERENCE / "mobilenetv3_large.yaml"), load_spec(REFERENCE / "mobilenetv3_large_relu.yaml")
    assert count_params(relu) == count_params(large) and count_macs(relu) == count_macs(large)
    assert large.to_string().replace("_hs", "_re") == relu.to_string()
    assert "_hs" not in relu.to_string()
    assert relu.content_hash() != large.content_hash()


def _write(tmp_path, text):
    path = tmp_path / "published.yaml"
    path.write_text(text)
    return path


GOOD = "networks:\n  - {network: A, spec: mobilenetv3_small, top1: 67.4, pixel1_ms: 15.8, source: paper}\n"


@pytest.mark.parametrize("text, field", [
    (GOOD.replace("67.4", "167.4"), "networks[0].top1"),
    (GOOD.replace("15.8", "-1"), "networks[0].pixel1_ms"),
    (GOOD.replace("mobilenetv3_small", "mobilenetv9"), "networks[0].spec"),
    (GOOD.replace(", source: paper", ""), "networks[0].source"),
    (GOOD.replace("network: A", "network: A, extra: 1"), "networks[0].extra"),
    (GOOD + GOOD.split("\n", 1)[1], "networks[1].spec"),  # listed twice
    ("networks: []\n", "networks"),
])
def test_a_bad_published_file_names_its_field(tmp_path, text, field):
    path = _write(tmp_path, text)
    with pytest.raises(UserError) as info:
        load_published(path)
    assert str(info.value).startswith(f"{path}: {field}:"), str(info.value)
    assert "\n" not in str(info.value)
    assert len(load_published(_write(tmp_path, GOOD))) == 1


def test_published_file_is_package_data():
    assert PUBLISHED_FILE.is_file() and PUBLISHED_FILE.is_relative_to(REFERENCE)


# ---- partial correlation at equal latency ---------------------------------------------------

LATENCY = np.array([51.0, 39.0, 71.0, 72.0, 64.0, 15.8, 12.8, 20.3, 16.6, 44.1, 12.2, 50.5])
TOP1 = np.array([75.2, 73.3, 75.2, 74.6, 72.0, 67.4, 65.4, 64.9, 60.8, 72.3, 61.9, 74.5])


def test_residuals_are_orthogonal_to_the_line():
    x = np.log(LATENCY)
    r = residuals(TOP1, x)
    assert abs(r.sum()) < 1e-9 and abs(r @ x) < 1e-9
    assert np.allclose(residuals(3 * x - 2, x), 0, atol=1e-12)


def test_a_score_equal_to_the_residual_has_partial_correlation_one():
    e = residuals(TOP1, np.log(LATENCY))
    got = partial_correlation(TOP1, e, LATENCY, ranks=False)
    assert got["partial_tau"] == pytest.approx(1.0) and got["partial_pearson"] == pytest.approx(1.0)
    # adding any line in log latency changes nothing; the opposite residual is -1
    assert partial_correlation(TOP1, e + 5 * np.log(LATENCY) - 1, LATENCY, ranks=False)["partial_tau"] == \
        pytest.approx(1.0)
    assert partial_correlation(TOP1, -e, LATENCY, ranks=False)["partial_tau"] == pytest.approx(-1.0)
    # in ranks: a score that ranks exactly like top-1 does too, whatever its scale
    assert partial_correlation(TOP1, np.exp(TOP1 / 10), LATENCY)["partial_tau"] == pytest.approx(1.0)


def test_a_score_that_is_latency_has_partial_correlation_zero():
    # as is: an exact line in log latency; in ranks: any increasing function of latency
    assert partial_correlation(TOP1, 2 * np.log(LATENCY) + 7, LATENCY, ranks=False)["partial_tau"] == 0.0
    for score in (LATENCY, LATENCY ** 3, np.sqrt(LATENCY), np.log(LATENCY)):
        got = partial_correlation(TOP1, score, LATENCY)
        assert got == {"partial_tau": 0.0, "partial_pearson": 0.0, "n": 12}
    # while their plain tau is latency's own
    assert stats.kendalltau(TOP1, LATENCY ** 3).statistic > 0.5


def test_latency_plus_an_orthogonal_part_has_partial_pearson_zero():
    x = np.log(LATENCY)
    design = np.column_stack([np.ones(12), x, residuals(TOP1, x)])
    noise = np.random.default_rng(0).normal(size=12)
    q, _ = np.linalg.qr(design)
    orthogonal = noise - q @ (q.T @ noise)  # orthogonal to 1, log latency and top-1's residual
    got = partial_correlation(TOP1, x + orthogonal, LATENCY, ranks=False)
    assert got["partial_pearson"] == pytest.approx(0.0, abs=1e-12)
    assert abs(got["partial_tau"]) < 0.4  # Kendall's is near, not at, zero


def test_partial_correlation_undefined_cases():
    assert partial_correlation(TOP1[:3], TOP1[:3], LATENCY[:3])["partial_tau"] is None  # too few
    # top-1 ranked exactly as latency: nothing left to explain
    assert partial_correlation(LATENCY * 2, TOP1, LATENCY)["partial_tau"] is None
    with pytest.raises(ValueError):
        partial_correlation(TOP1, TOP1, -LATENCY)


def test_partial_tau_noise_matches_unrelated_rankings():
    assert partial_tau_standard_error(12) == tau_standard_error(11)
    rng = np.random.default_rng(1)
    taus = []
    for _ in range(400):  # top-1 related to latency, the score related to latency only
        top1 = np.log(LATENCY) + rng.normal(0, 0.5, 12)
        score = rng.normal() * np.log(LATENCY) + rng.normal(size=12)
        tau = partial_correlation(top1, score, LATENCY)["partial_tau"]
        if tau is not None:
            taus.append(tau)
    assert abs(np.mean(taus)) < 0.05
    assert np.std(taus) == pytest.approx(partial_tau_standard_error(12), rel=0.15)
