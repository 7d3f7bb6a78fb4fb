"""The phenomena of one Kuramoto layer driven by an image, on small grids with fixed seeds, and the
measures that report them."""

import math

import numpy as np
import pytest
import torch

from akorn.core.layer import KuramotoLayer
from akorn.viz import dynamics, waves
from tests.conftest import run_cli


def _picture(size=24):
    img = waves.default_image(size)
    return img, img.mean(-1) > 0.2


def _measure(settings, size=24):
    img, mask = _picture(size)
    runs = {"masked": waves.run_waves(img, mask, settings), "unmasked": waves.run_waves(img, None, settings)}
    half = settings.steps // 2
    rates = {
        k: waves.divergence_rates(img, m, settings, runs[k], half) for k, m in (("masked", mask), ("unmasked", None))
    }
    report, _ = waves.wave_measures(runs, rates, (size, size), mask, settings.n)
    return report


def test_the_update_is_the_kuramoto_layer_s_update():
    s = waves.WaveSettings(steps=6, omega=0.4, lag=0.7, random_coupling=0.5, kernel_size=3)
    img, _ = _picture(10)
    run = waves.run_waves(img, None, s)
    g = torch.Generator().manual_seed(s.seed)
    weight = waves.coupling_kernel(s, g)
    c = waves.stimulus(img, 2, s.stimulus_scale, g)
    torch.randn(1, 1, 10, 10, generator=g, dtype=torch.float64)  # the per-pixel ω draw
    x0 = torch.randn(1, 2, 10, 10, generator=g, dtype=torch.float64)
    layer = KuramotoLayer(2, n=2, kernel_size=3, omega_init=0.4, gamma=s.gamma, c_norm=None, steps=6).double()
    with torch.no_grad():
        layer.coupling.conv.weight.copy_(weight)
        layer.coupling.conv.bias.zero_()
    traj = layer(x0, c, return_trajectory=True).trajectory[0].flatten(2).transpose(1, 2)
    assert torch.allclose(run.states.double(), traj, atol=1e-6)


def test_waves_travel_with_the_lag_and_stop_without_lag_or_omega():
    moving = _measure(waves.WaveSettings(steps=96, seed=1), size=32)
    assert moving["masked"]["phase_velocity_deg_per_step"] > 2.0
    assert moving["masked"]["wavefront_speed_px_per_step"] > 0.02
    still = _measure(waves.WaveSettings(steps=192, seed=1, lag=0.0, omega=0.0), size=32)  # a gradient flow settles
    for run in still.values():
        assert run["object_speed_deg_per_step"] < 0.02 and run["phase_velocity_deg_per_step"] < 0.001


def test_the_masked_background_does_not_move_and_the_unmasked_one_does():
    r = _measure(waves.WaveSettings(steps=64))
    assert r["masked"]["background_speed_deg_per_step"] == 0.0
    assert r["unmasked"]["background_speed_deg_per_step"] > 1.0


@pytest.mark.parametrize("seed", [0, 1])
def test_the_unmasked_image_diverges_faster_than_the_masked_object(seed):
    r = _measure(waves.WaveSettings(steps=96, seed=seed), size=32)
    assert r["unmasked"]["divergence_rate_per_step"] > r["masked"]["divergence_rate_per_step"]


def test_the_period_of_a_periodic_signal_is_exact():
    for p in (5, 12, 37):
        t = torch.arange(300, dtype=torch.float64)
        angles = 2 * math.pi * t[:, None] / p + torch.linspace(0, 3, 40)[None]
        sig = torch.stack([angles.cos(), angles.sin()], -1).flatten(1)
        assert dynamics.period(sig) == p
    noise = torch.randn(300, 40, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert dynamics.period(noise) is None
    assert dynamics.period(torch.ones(50, 4)) is None  # still: no period


def test_divergence_rate_is_negative_at_a_fixed_point():
    img, mask = _picture(16)
    s = waves.WaveSettings(steps=80, lag=0.0)  # a gradient flow: it settles, nearby runs converge
    run = waves.run_waves(img, mask, s)
    assert waves.divergence_rates(img, mask, s, run, 40)[-1] < 0


def test_wavefront_speed_of_a_plane_wave():
    H = W = 32
    k, w = 0.5, 0.2  # rad per pixel, rad per step: fronts move w / k = 0.4 px per step
    t = torch.arange(20, dtype=torch.float64)[:, None, None]
    xx = torch.arange(W, dtype=torch.float64)[None, None, :].expand(1, H, W)
    th = k * xx - w * t
    traj = torch.stack([th.cos(), th.sin()], -1).reshape(20, H * W, 2)
    m = dynamics.wavefront_speed(traj, (H, W), np.ones((H, W), bool))
    assert m["wavefront_speed_px_per_step"] == pytest.approx(0.4, rel=1e-6)
    assert m["phase_velocity_deg_per_step"] == pytest.approx(math.degrees(w), rel=1e-6)


def test_settling_step():
    assert dynamics.settling_step(np.array([5.0, 4, 2, 0.3, 0.1, 0.0])) == 3
    assert dynamics.settling_step(np.array([1.0, 1, 1])) is None


def test_waves_writes_its_measures(tmp_path):
    import json

    r = run_cli("viz", "waves", "--size", "16", "--steps", "8", "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    rec = json.loads((tmp_path / "o" / "measures.json").read_text())
    assert set(rec["runs"]) == {"masked", "unmasked"}
    assert rec["runs"]["masked"]["background_speed_deg_per_step"] == 0.0
    for name in ("speed.png", "divergence.png", "autocorrelation.png"):
        assert (tmp_path / "o" / name).stat().st_size > 0


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--steps", "1"], "--steps must be at least 2"),
        (["--n", "3"], "even N"),
        (["--kernel", "4"], "--kernel"),
    ],
)
def test_waves_bad_settings_leave_no_folder(tmp_path, argv, words):
    r = run_cli("viz", "waves", "--size", "8", *argv, "--out", tmp_path / "o")
    assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()


def test_tsne_subsamples_and_says_so():
    pytest.importorskip("sklearn")
    from akorn.viz.projection import project_states

    said = []
    states = torch.randn(6, 50, 4, generator=torch.Generator().manual_seed(0))
    colours = project_states(states, "tsne", say=said.append, max_points=120)
    assert colours.shape == (6, 50, 3) and len(said) == 1 and "120 of 300" in said[0]


def test_viz_objects_reports_each_layer_s_speed(tmp_path):
    import json

    r = run_cli("viz", "objects", "pretrained:tetrominoes", "--projection", "pca", "--out", tmp_path / "o")
    assert r.returncode == 0, r.stderr
    layers = json.loads((tmp_path / "o" / "layers.json").read_text())["layers"]
    m = layers["layer 1"]
    assert m["mean_speed_deg_per_step"] > 0 and len(m["speed_deg_per_step"]) >= 2
    assert "mean angular speed" in r.stdout and (tmp_path / "o" / "speed.png").stat().st_size > 0


def test_a_projection_without_its_package_names_the_extra(tmp_path):
    import importlib.util

    if importlib.util.find_spec("umap") is not None:
        pytest.skip("umap-learn is installed")
    for words in (["viz", "objects", "pretrained:tetrominoes"], ["viz", "waves", "--size", "8"]):
        r = run_cli(*words, "--projection", "umap", "--out", tmp_path / "o")
        assert r.returncode == 2 and "akorn[umap]" in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "o").exists()
