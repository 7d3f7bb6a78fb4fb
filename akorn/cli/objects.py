"""``akorn objects ...``: train, eval (FG-ARI / MBO and a figure grid), generate."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from akorn.cli.common import (
    DEVICE_HELP,
    MODEL_HELP,
    add_export_parser,
    add_quiet_option,
    run_training,
    show_progress,
    subcommands,
    train_parser,
    write_imported,
)
from akorn.engine.files import check_output_file, ensure_writable_dir, write_text_atomically
from akorn.errors import UserError


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help)
    s = subcommands(p)
    t = train_parser(s, "train", "SimCLR training (e.g. preset=cpu data=tetrominoes)")
    t.set_defaults(func=cmd_train, extras=("objects",))
    e = s.add_parser("eval", help="FG-ARI and MBO of a run's masks on its test split, plus a figure grid")
    e.add_argument("run", help=MODEL_HELP)
    e.add_argument("--uptile", type=int, default=1, help="up-tiling factor (1: off; 4 in the paper)")
    e.add_argument(
        "--uptile-noise",
        choices=("independent", "shared"),
        default="independent",
        help="initial oscillator states of the shifted copies: independent (reference code) or shared",
    )
    e.add_argument(
        "--uptile-align",
        choices=("corner", "centre", "reference"),
        default="reference",
        help="where a patch's feature lands in the denser map: its corner, its centre, or the "
        "reference code's resized-image windows",
    )
    e.add_argument("--clusters", type=int, default=0, renamed_from=("--k",), help="clusters (default: the dataset's)")
    e.add_argument("--method", choices=["agglomerative", "kmeans"], default=None)
    e.add_argument("--limit", type=int, default=0, help="first N test images only")
    e.add_argument("--step", type=int, default=None, help="the checkpoint of this step (default: the latest)")
    e.add_argument(
        "--weights",
        choices=("ema", "raw"),
        default="ema",
        help="the EMA weights (default) or the raw weights of the optimizer",
    )
    e.add_argument("--figure", default=None, help="PNG grid path (default RUN/masks.png)")
    e.add_argument("--json", help="write the report here too")
    e.add_argument("--records", metavar="FILE.jsonl", help="one line per image: its FG-ARI and MBO")
    add_quiet_option(e)
    e.add_argument("--device", default="auto", help=DEVICE_HELP)
    e.add_argument("overrides", nargs="*")
    e.set_defaults(func=cmd_eval, extras=("objects",))

    add_export_parser(s, "objects")

    im = s.add_parser("import", help="store an object-discovery checkpoint of the authors' code as a model")
    im.add_argument("checkpoint", help="their ema_<epoch>.pth, ema_model.pth or model.pth")
    im.add_argument("--out", required=True, help="NAME: writes NAME.safetensors and NAME.json (eval and viz take it)")
    im.add_argument("--steps", type=int, default=8, help="T their model ran with (their --T; default 8)")
    im.add_argument("--data", default="tetrominoes", help="the data its evaluations use (a name, .npz or folder)")
    im.add_argument(
        "--image-size", type=int, default=0, help="image size of a conv-coupled model (attention: read off)"
    )
    im.set_defaults(func=cmd_import)


def cmd_train(args):
    from akorn.experiments.objects.experiment import ObjectsExperiment

    run_training(args, ObjectsExperiment())


def save_grid(images, gt, pred, path: Path, rows: int = 8):
    """image | ground truth | predicted masks, one row per image."""
    from akorn.viz.media import write_png
    from akorn.viz.projection import hsv_to_rgb

    def colour(labels):
        hue = (labels * 0.61803) % 1.0
        rgb = hsv_to_rgb(hue, np.full_like(hue, 0.75), np.full_like(hue, 0.95))
        rgb[labels == 0] *= 0.25
        return rgb

    n = min(rows, len(images))
    out = []
    for i in range(n):
        img = images[i].numpy().astype(np.float32) / 255
        sep = np.ones((img.shape[0], 2, 3), np.float32)
        out.append(
            np.concatenate([img, sep, colour(gt[i].numpy().astype(float)), sep, colour(pred[i].astype(float))], 1)
        )
        out.append(np.ones((2, out[-1].shape[1], 3), np.float32))
    grid = np.concatenate(out, 0)
    scale = max(1, 96 // images.shape[1])
    write_png(grid.repeat(scale, 0).repeat(scale, 1), path)


def cmd_eval(args):
    from akorn.engine.distributed import pick_device
    from akorn.experiments.model_files import load_model
    from akorn.experiments.objects.experiment import ObjectsExperiment

    _check_eval_args(args)
    exp = ObjectsExperiment()
    loaded = load_model(args.run, exp, words=args.overrides, weights=args.weights, step=args.step)
    model, cfg = loaded.model.to(pick_device(args.device)), loaded.config
    ds = exp.test_data(cfg)
    if args.limit:
        ds = ds[: args.limit]
    k = args.clusters or exp.clusters(cfg)
    h = model.grid[0] * max(1, args.uptile)
    if k > h * h:
        raise UserError(f"k={k} clusters is more than the {h * h} patches of the feature map")
    settings = {"checkpoint": loaded.source, "weights": args.weights, "k": k, "uptile": args.uptile,
                "uptile_noise": args.uptile_noise, "uptile_align": args.uptile_align}  # fmt: skip
    t0 = time.time()
    aris, mbos, preds = _score(args, model, cfg, ds, k, settings)
    rep = _report(args, model, cfg, ds, aris, mbos, settings, time.time() - t0)
    _print_report(rep, cfg, k, args.uptile)
    where = Path("objects-eval") if "run" not in loaded.record else Path(args.run)
    fig = Path(args.figure) if args.figure else ensure_writable_dir(where) / f"masks-x{args.uptile}.png"
    save_grid(ds.images, ds.masks, preds, fig)
    print(f"figure: {fig}")
    if args.json:
        write_text_atomically(args.json, json.dumps(rep, indent=2), "--json file")


def _check_eval_args(args):
    if args.limit < 0:
        raise UserError(f"--limit must be 0 (all) or a positive number of images, got {args.limit}")
    if args.uptile < 1:
        raise UserError(f"--uptile must be a positive factor (1: off), got {args.uptile}")
    for path, what in ((args.json, "--json file"), (args.figure, "--figure"), (args.records, "--records file")):
        if path:
            check_output_file(path, what)


def _score(args, model, cfg, ds, k: int, settings: dict):
    """Per-image FG-ARI and MBO and the predicted masks, with a progress bar and per-image records."""
    from tqdm import tqdm

    from akorn.engine.records import Records
    from akorn.experiments.objects.experiment import evaluate_masks

    records = Records(args.records, {"run": args.run, **settings}) if args.records else None
    bar = tqdm(total=len(ds), desc="images", unit="image", disable=not show_progress(args), file=sys.stderr)

    def on_batch(first, aris, mbos):
        for i, (a, m) in enumerate(zip(aris, mbos)):
            if records is not None:
                records.write({"index": first + i, "fg_ari": _number(a), "mbo": _number(m)})
        bar.update(len(aris))
        bar.set_postfix(fg_ari=f"{100 * np.nanmean(aris):.1f}")

    try:
        return evaluate_masks(model, ds, k, args.method or cfg.cluster_method, args.uptile, seed=cfg.seed,
                              uptile_noise=args.uptile_noise, uptile_align=args.uptile_align,
                              on_batch=on_batch)  # fmt: skip
    except ValueError as e:
        raise UserError(str(e)) from None
    finally:
        bar.close()
        if records is not None:
            records.close()


def _report(args, model, cfg, ds, aris, mbos, settings: dict, seconds: float) -> dict:
    import torch

    import akorn
    from akorn.experiments.objects.metrics import scores_by_contact

    data = f"{cfg.data} ({cfg.tetromino_layout})" if cfg.data == "tetrominoes" else cfg.data
    return {
        **settings,
        "run": args.run,
        "data": data,
        "images": len(ds),
        "test_size": cfg.test_size,
        "seed": cfg.seed,
        "method": args.method or cfg.cluster_method,
        "device": str(next(model.parameters()).device),
        "akorn_version": akorn.__version__,
        "torch_version": torch.__version__,
        "fg_ari_mean": float(np.nanmean(aris)),
        "fg_ari_std": float(np.nanstd(aris)),
        "mbo_mean": float(np.nanmean(mbos)),
        "mbo_std": float(np.nanstd(mbos)),
        "seconds": round(seconds, 1),
        "fg_ari_by_contact": scores_by_contact(ds.masks.numpy(), ds.images.numpy(), aris),
    }


def _print_report(rep: dict, cfg, k: int, uptile: int):
    print(f"{cfg.model} on {rep['data']} ({rep['images']} test images, k={k}, up-tiling x{uptile}):")
    print(
        f"FG-ARI {100 * rep['fg_ari_mean']:.1f} ± {100 * rep['fg_ari_std']:.1f}   "
        f"MBO {100 * rep['mbo_mean']:.1f} ± {100 * rep['mbo_std']:.1f}"
    )
    print(
        "FG-ARI by how the objects meet: "
        + ", ".join(
            f"{name.replace('_', ' ')} {100 * g['fg_ari_mean']:.1f} ({g['images']} images)"
            for name, g in rep["fg_ari_by_contact"].items()
            if g["images"]
        )
    )


def cmd_import(args):
    from akorn.experiments.model_files import load_model

    words = [f"steps={args.steps}", f"data={args.data}"] + [f"image_size={args.image_size}"] * bool(args.image_size)
    loaded = load_model(args.checkpoint, "objects", words=words)
    f = loaded.config
    write_imported(loaded, args.out, f"imported from the authors' code ({Path(args.checkpoint).name}): "
                   f"{f.coupling} coupling, C={f.channels}, {f.layers} layer(s), T={f.steps}")  # fmt: skip


def _number(x) -> float | None:
    """A score for JSON: NaN (an image without foreground objects) becomes null."""
    return None if x != x else float(x)
