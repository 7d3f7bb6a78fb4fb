"""``akorn adapters ...``: train Kuramoto adapters on a frozen pretrained backbone; compare the masks of
the backbone's own features, the adapters' and an AKOrN trained from scratch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from akorn.cli.common import DEVICE_HELP, run_training, subcommands, train_parser
from akorn.errors import UserError


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help)
    s = subcommands(p)
    t = train_parser(s, "train", "train adapters (e.g. preset=cpu backbone=mobilenet_v2 data=tetrominoes)")
    t.set_defaults(func=cmd_train, extras=("objects",))
    e = s.add_parser("eval", help="masks of backbone features, adapter features (and a scratch AKOrN), compared")
    e.add_argument("run")
    e.add_argument("--scratch", default="", help="a classify run of model=akorn-attn to compare as well")
    e.add_argument("--voc", default="", help="a VOC2012 folder: its val images as well (VOC's 4 segments)")
    e.add_argument("--coco", nargs=2, metavar=("ANNOTATIONS", "IMAGES"), help="COCO instances (7 segments)")
    e.add_argument("--limit", type=int, default=50, help="photographs of VOC / COCO (0: all)")
    e.add_argument("--uptile", type=int, default=1, help="up-tiling factor for every method (1: off; 4 in the paper)")
    e.add_argument(
        "--uptile-align",
        choices=("corner", "centre", "reference"),
        default="reference",
        help="where a patch's feature lands in the denser map (as in akorn objects eval)",
    )
    e.add_argument("--out", default="", help="folder for report.json, report.md, masks.png (default RUN/masks)")
    e.add_argument("--device", default="auto", help=DEVICE_HELP)
    e.set_defaults(func=cmd_eval, extras=("objects",))


def cmd_train(args):
    from akorn.experiments.adapters import AdaptersExperiment

    run_training(args, AdaptersExperiment())


def _figure(photos, masks: dict, path: Path):
    from akorn.viz.media import write_png
    from akorn.viz.projection import hsv_to_rgb

    def colour(labels):
        hue = (labels.astype(float) * 0.61803) % 1.0
        rgb = hsv_to_rgb(hue, np.full_like(hue, 0.75), np.full_like(hue, 0.95))
        rgb[labels <= 0] *= 0.25
        return rgb

    rows = []
    for i, photo in enumerate(photos):
        step = max(1, photo.image.shape[0] // 120)
        cells = [photo.image[::step, ::step] / 255.0, colour(photo.instances[::step, ::step])]
        cells += [colour(m[i][::step, ::step]) for m in masks.values()]
        h = min(c.shape[0] for c in cells)
        sep = np.ones((h, 3, 3))
        row = []
        for c in cells:
            row += [c[:h], sep]
        rows += [np.concatenate(row, 1), np.ones((3, sum(c.shape[1] for c in row), 3))]
    width = min(r.shape[1] for r in rows)
    write_png(np.concatenate([r[:, :width] for r in rows], 0).astype(np.float32), path)


def cmd_eval(args):
    import torch

    from akorn.engine.distributed import pick_device
    from akorn.engine.files import ensure_writable_dir, write_text_atomically
    from akorn.experiments import adapters as ad
    from akorn.experiments import photos as ph
    from akorn.experiments.model_files import load_model

    if args.limit < 0:
        raise UserError(f"--limit must be 0 (all) or positive, got {args.limit}")
    if args.uptile < 1:
        raise UserError(f"--uptile must be a positive factor (1: off), got {args.uptile}")
    device = pick_device(args.device)
    exp = ad.AdaptersExperiment()
    loaded = load_model(args.run, exp)
    net, cfg, ckpt = loaded.model, loaded.config, loaded.source
    net = net.to(device)
    models = {"backbone": (ad.BackboneOnly(net), cfg.image_size), "backbone+adapters": (net, cfg.image_size)}
    if args.scratch:
        theirs = load_model(args.scratch, "classify")
        scratch, scfg = theirs.model, theirs.config
        if scfg.model != "akorn-attn":
            raise UserError(f"--scratch: {args.scratch} is a {scfg.model} run; the comparison takes model=akorn-attn")
        models["akorn (scratch)"] = (scratch.to(device), scfg.image_size)
    for name, (model, _) in models.items():
        if args.uptile > 1 and model.patch % args.uptile:
            raise UserError(f"--uptile {args.uptile} must divide every method's patch (stride); {name}: {model.patch}")
    photo_sets = [("bundled photographs", ph.bundled(), 4)]
    if args.voc:
        photo_sets.append(("PASCAL VOC val", ph.read_voc(args.voc, "val", args.limit), 4))
    if args.coco:
        photo_sets.append(("COCO", ph.read_coco(*args.coco, limit=args.limit), 7))
    out = ensure_writable_dir(Path(args.out) if args.out else Path(args.run) / "masks")
    report = {"run": args.run, "checkpoint": str(ckpt), "backbone": cfg.backbone, "points": cfg.point_list(),
              "uptile": args.uptile, "uptile_align": args.uptile_align}  # fmt: skip
    tiling = dict(uptile=args.uptile, uptile_align=args.uptile_align)
    with torch.no_grad():
        for name, photos, k in photo_sets:
            scores, masks = ad.compare_on_photos(models, photos, k, cfg.seed, **tiling)
            report[name] = scores
            if name == "bundled photographs":
                _figure(photos, masks, out / "masks.png")
        ds = exp.test_data(cfg)
        if ds is not None:
            report[f"{cfg.data} scenes"] = ad.compare_on_scenes(models, ds, exp.clusters(cfg), cfg.seed, **tiling)
    lines = ["| data | method | MBO_i | MBO_c | FG-ARI | MBO |", "|---|---|---|---|---|---|"]
    for data, scores in report.items():
        if not isinstance(scores, dict):
            continue
        for method, s in scores.items():
            cells = [f"{100 * s[k]:.1f}" if k in s else "" for k in ("mbo_i", "mbo_c", "fg_ari", "mbo")]
            lines.append(f"| {data} ({s['images']}) | {method} | " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    write_text_atomically(out / "report.json", json.dumps(report, indent=1) + "\n")
    write_text_atomically(out / "report.md", table + "\n")
    print(table)
    print(f"written: {out}/report.json, report.md, masks.png")
