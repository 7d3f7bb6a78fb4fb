"""Visualisation outputs: frame counts, sizes, frames that change, index page, bad input."""

import numpy as np
import torch
from PIL import Image

from akorn.viz.projection import phase_colours, project_states
from tests.conftest import run_cli


def _gif_frames(path):
    with Image.open(path) as im:
        frames = []
        for i in range(im.n_frames):
            im.seek(i)
            frames.append(np.asarray(im.convert("RGB")))
    return np.stack(frames)


def test_waves_outputs(tmp_path):
    img = np.zeros((12, 12, 3), np.uint8)
    img[3:9, 3:9] = (250, 120, 30)
    Image.fromarray(img).save(tmp_path / "in.png")
    mask = np.zeros((12, 12), np.uint8)
    mask[3:9, 3:9] = 255
    Image.fromarray(mask).save(tmp_path / "mask.png")
    out = tmp_path / "out"
    r = run_cli(
        "viz",
        "waves",
        tmp_path / "in.png",
        "--size",
        "0",
        "--mask",
        tmp_path / "mask.png",
        "--steps",
        "10",
        "--kernel",
        "3",
        "--out",
        out,
    )
    assert r.returncode == 0, r.stderr
    frames = _gif_frames(out / "waves.gif")
    assert frames.shape[0] == 11  # x_0 .. x_T
    scale = 160 // 12
    assert frames.shape[1] == 12 * scale and frames.shape[2] == (3 * 12 + 4) * scale  # image | masked | unmasked
    diffs = [np.abs(frames[t + 1].astype(int) - frames[t]).mean() for t in range(10)]
    assert all(d > 0 for d in diffs[:3])  # the states move
    for name in ("energy.png", "order.png", "index.html", "waves-last.png"):
        assert (out / name).stat().st_size > 0
    assert "waves.gif" in (out / "index.html").read_text()


def test_waves_default_image_runs_offline(tmp_path):
    r = run_cli("viz", "waves", "--size", "16", "--steps", "4", "--n", "4", "--out", tmp_path)
    assert r.returncode == 0, r.stderr
    assert _gif_frames(tmp_path / "waves.gif").shape[0] == 5


def test_waves_bad_input(tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    r = run_cli("viz", "waves", tmp_path / "bad.png", "--out", tmp_path / "o")
    assert r.returncode == 2 and "cannot read image" in r.stderr
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "in.png")
    Image.fromarray(np.zeros((5, 5), np.uint8)).save(tmp_path / "m.png")
    r = run_cli(
        "viz", "waves", tmp_path / "in.png", "--size", "0", "--mask", tmp_path / "m.png", "--out", tmp_path / "o"
    )
    assert r.returncode == 2 and "mask" in r.stderr and "5x5" in r.stderr
    (tmp_path / "file").write_text("")
    r = run_cli("viz", "waves", "--out", tmp_path / "file" / "sub", "--steps", "2", "--size", "8")
    assert r.returncode == 2 and "cannot be written" in r.stderr


def test_projection_is_joint_over_steps():
    torch.manual_seed(0)
    states = torch.randn(5, 7, 8)
    colours = project_states(states)
    assert colours.shape == (5, 7, 3) and colours.min() >= 0 and colours.max() <= 1
    # joint: identical states at different steps get identical colours
    states[3] = states[1]
    colours = project_states(states)
    assert np.allclose(colours[3], colours[1], atol=1e-6)
    ph = phase_colours(torch.tensor([[[1.0, 0.0], [-1.0, 0.0]]]))
    assert np.allclose(ph[0, 0], [1, 0, 0]) and np.allclose(ph[0, 1], [0, 1, 1])


def test_sudoku_viz_and_accuracy_plot(tmp_path, puzzle_csv):
    r = run_cli(
        "sudoku",
        "train",
        "preset=tiny",
        "threads=1",
        "max_steps=1",
        f"data={puzzle_csv}",
        f"eval_data={puzzle_csv}",
        f"out_dir={tmp_path}",
        "name=m",
    )
    assert r.returncode == 0, r.stderr
    out = tmp_path / "viz"
    r = run_cli("viz", "sudoku", "--model", tmp_path / "m", "--steps", "6", "--out", out)
    assert r.returncode == 0, r.stderr
    frames = _gif_frames(out / "sudoku.gif")
    assert frames.shape[0] == 7 and frames.shape[1] == 9 * 28
    assert np.abs(frames[-1].astype(int) - frames[0]).mean() > 0
    ext = tmp_path / "ext"
    r = run_cli(
        "sudoku",
        "extension",
        tmp_path / "m",
        "--data",
        puzzle_csv,
        "--steps",
        "2,4",
        "--limit",
        "5",
        "--out",
        ext,
        "--precision",
        "bf16",
    )
    assert r.returncode == 0, r.stderr
    table = (ext / "table.md").read_text()
    assert (ext / "plot.png").exists() and (ext / "plot-cells.png").exists() and "T=4" in table and "bf16" in table
    r = run_cli("viz", "accuracy", ext / "results.json", ext / "results.json", "--out", tmp_path / "acc")
    assert r.returncode == 0 and (tmp_path / "acc" / "accuracy-vs-T.png").exists()
    for i, bad in enumerate(["[1, 2]", '{"a": 1}', '{"a": {"x": 0.5}}', '{"a": {"16": "high"}}']):
        (tmp_path / "bad.json").write_text(bad)
        fresh = tmp_path / f"acc-{i}"
        r = run_cli("viz", "accuracy", ext / "results.json", tmp_path / "bad.json", "--out", fresh)
        assert r.returncode != 0 and "bad.json" in r.stderr and "Traceback" not in r.stderr, bad
        assert not fresh.exists()  # nothing written for a run that failed


def test_objects_viz_states_and_masks_over_steps(tmp_path):
    r = run_cli("objects", "train", "preset=tiny", "threads=1", "max_steps=1", f"out_dir={tmp_path}", "name=o")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "viz"
    r = run_cli("viz", "objects", tmp_path / "o", "--out", out)
    assert r.returncode == 0, r.stderr
    states, masks = _gif_frames(out / "layer1-states.gif"), _gif_frames(out / "layer1-masks.gif")
    assert states.shape[0] == masks.shape[0] == 3  # tiny preset: T=2 -> x_0, x_1, x_2
    assert np.abs(states[-1].astype(int) - states[0]).mean() > 0
    assert "layer1-masks.gif" in (out / "index.html").read_text()
    r = run_cli("viz", "objects", tmp_path / "o", "--index", "999", "--out", out)
    assert r.returncode == 2 and "--index" in r.stderr


def test_accuracy_curves_of_one_run_at_other_steps_join_and_repeats_stay_apart():
    from akorn.cli.viz import merge_curves

    results = merge_curves({}, {"a": {"16": 0.5, "32": 0.6}, "b": {"1": 0.9}}, "x.json")
    merge_curves(results, {"b": {"4": 0.1, "2": 0.4}, "a": {"16": 0.55}}, "y.json")
    assert results["b"] == {"1": 0.9, "2": 0.4, "4": 0.1} and list(results["b"]) == ["1", "2", "4"]
    assert results["a"] == {"16": 0.5, "32": 0.6} and results["a [y.json]"] == {"16": 0.55}
