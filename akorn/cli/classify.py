"""``akorn classify ...``: train an image classifier; evaluate its accuracy, robustness and calibration;
export a run as a shippable model."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from akorn.cli.common import (
    DEVICE_HELP,
    add_quiet_option,
    run_training,
    show_progress,
    subcommands,
    train_parser,
)
from akorn.cli.model_files import PRETRAINED, add_export_parser, export, is_file_model
from akorn.cli.model_files import load_model as load_model_from
from akorn.errors import UserError


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help)
    s = subcommands(p)
    t = train_parser(s, "train", "train a classifier (e.g. preset=cpu model=akorn data=cifar10)")
    t.set_defaults(func=cmd_train)

    e = s.add_parser("eval", help="clean accuracy, PGD / AutoAttack, corruptions and calibration, image by image")
    e.add_argument("run", help="a run folder, pretrained:cifar10, or NAME.safetensors (with NAME.json)")
    e.add_argument("--data", default="", help="test images (default: the run's test split; pretrained: cifar10)")
    e.add_argument("--attack-data", default="", help="images the attacks use (default: --data), e.g. FILE.npz")
    e.add_argument("--out", default="", help="folder for report.json, report.md, reliability.png, records.jsonl")
    e.add_argument("--eps", default="8/255", help="L-inf radius, a number or fraction in [0, 1] (default 8/255)")
    e.add_argument("--attacks", default="pgd,autoattack,autoattack-rand", help="any of pgd, autoattack, "
                   "autoattack-rand, or none")  # fmt: skip
    e.add_argument("--attack-limit", type=int, default=200, help="images for PGD and AutoAttack (0: all)")
    e.add_argument("--rand-limit", type=int, default=20, help="images for AutoAttack-rand (0: all)")
    e.add_argument("--pgd-steps", type=int, default=20)
    e.add_argument("--eot", type=int, default=10, help="forward passes per PGD gradient of a random model")
    e.add_argument("--corruptions", default="all", help="all (15 types), none, or a comma list")
    e.add_argument("--severities", default="1,2,3,4,5")
    e.add_argument("--corruption-limit", type=int, default=1000, help="images per corruption and severity (0: all)")
    e.add_argument("--limit", type=int, default=0, help="clean images (0: all)")
    e.add_argument("--batch-size", type=int, default=100)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--resume", action="store_true", help="keep the images already in OUT/records.jsonl")
    e.add_argument(
        "--report-only",
        action="store_true",
        help="with --resume: the report of the images recorded so far (an evaluation stopped part way), no new work",
    )
    e.add_argument("--weights", choices=("ema", "raw"), default="ema")
    e.add_argument("--step", type=int, default=None, help="the checkpoint of this step (default: the latest)")
    e.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    add_quiet_option(e)
    e.add_argument("--device", default="auto", help=DEVICE_HELP)
    e.set_defaults(func=cmd_eval, extras=("classify",))

    add_export_parser(s, "eval takes NAME.safetensors", cmd_export)

    im = s.add_parser("import", help="a checkpoint of the authors' classifier as our model (NAME.safetensors + .json)")
    im.add_argument("checkpoint", help="their ema_<epoch>.pth, model.pth or a plain state dict")
    im.add_argument(
        "--out", required=True, help="NAME: writes NAME.safetensors and NAME.json (eval takes NAME.safetensors)"
    )
    im.set_defaults(func=cmd_import)


def cmd_train(args):
    from akorn.experiments.classify.experiment import ClassifyExperiment

    run_training(args, ClassifyExperiment())


def _plan(args):
    from akorn.experiments.classify import attacks, corruptions
    from akorn.experiments.classify.evaluation import Plan

    for name in ("attack_limit", "rand_limit", "corruption_limit", "limit"):
        if getattr(args, name) < 0:
            raise UserError(f"--{name.replace('_', '-')} must be 0 (all) or a positive number of images")
    for name, lo in (("pgd_steps", 1), ("eot", 1), ("batch_size", 1)):
        if getattr(args, name) < lo:
            raise UserError(f"--{name.replace('_', '-')} must be at least {lo}, got {getattr(args, name)}")
    if not 0 <= args.seed < 2**31:
        raise UserError(f"--seed must be in 0..2^31-1, got {args.seed}")
    return Plan(
        eps=attacks.parse_eps(args.eps),
        attacks=attacks.parse_attacks(args.attacks),
        attack_limit=args.attack_limit,
        rand_limit=args.rand_limit,
        pgd_steps=args.pgd_steps,
        eot=args.eot,
        corruptions=corruptions.parse(args.corruptions),
        severities=corruptions.parse_severities(args.severities),
        corruption_limit=args.corruption_limit,
        limit=args.limit,
        batch_size=args.batch_size,
        seed=args.seed,
    )


def load_model(run: str, weights: str = "ema", step: int | None = None):
    """``(model, config, where it came from)`` of a run folder or a shipped model."""
    from akorn.experiments import pretrained
    from akorn.experiments.classify.experiment import ClassifyExperiment

    aliases = {"cifar10": pretrained.CIFAR10}
    return load_model_from(ClassifyExperiment(), run, aliases, use_ema=weights == "ema", step=step)


def _test_set(spec: str, cfg, split_default: str):
    from akorn.experiments.classify import data

    return data.load(spec or split_default, "test", cfg.image_size, cfg.workers, True)


def cmd_eval(args):
    import torch
    from tqdm import tqdm

    from akorn.engine.distributed import barrier, init_distributed, pick_device
    from akorn.engine.files import check_output_file, ensure_writable_dir, write_text_atomically
    from akorn.engine.records import Records, read_records
    from akorn.experiments.classify import calibration
    from akorn.experiments.classify import evaluation as ev

    plan = _plan(args)
    if args.report_only and not args.resume:
        raise UserError("--report-only reports the records of an earlier evaluation: give --resume too")
    if args.threads < 0:
        raise UserError(f"--threads must be 0 (torch's default) or positive, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    pretrained = args.run.startswith(PRETRAINED)
    default_out = Path("classify-eval") if is_file_model(args.run) else Path(args.run) / "robustness"
    out = Path(args.out) if args.out else default_out
    model, cfg, source = load_model(args.run, args.weights, args.step)
    info, device = init_distributed(pick_device(args.device))
    model = model.to(device)
    default_data = "cifar10" if pretrained else (cfg.test_data or cfg.data)
    clean_set = _test_set(args.data, cfg, default_data)
    attack_set = _test_set(args.attack_data, cfg, args.data or default_data) if args.attack_data else clean_set
    for name, ds in (("--data", clean_set), ("--attack-data", attack_set)):
        if (len(ds.class_names), ds.channels, ds.size[0]) != (cfg.classes, cfg.in_channels, cfg.image_size):
            raise UserError(
                f"{name} {ds.source}: {len(ds.class_names)} classes of {ds.channels}-channel {ds.size[0]}px images; "
                f"the model takes {cfg.classes} classes of {cfg.in_channels}-channel {cfg.image_size}px images"
            )
    if plan.corruptions:
        from akorn.experiments.classify.corruptions import check_size

        check_size(clean_set.size)
    ensure_writable_dir(out)  # only now: bad input above leaves nothing behind
    for f in ("report.json", "report.md", "reliability.png", "records.jsonl"):
        check_output_file(out / f, f)
    random = ev.is_random(model)
    header = {
        "model": source,
        "weights": args.weights,
        "data": clean_set.source,
        "attack_data": attack_set.source,
        **{k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(plan).items()},
        "eot": plan.eot if random else 1,
    }
    # Under torchrun every rank takes every world-th image of each task and keeps its own records file;
    # rank 0 reads them all for the report (and a resumed evaluation skips what any of them holds).
    own = out / ("records.jsonl" if info.is_main else f"records.{info.rank}.jsonl")
    if info.is_main and not args.resume:
        for stale in out.glob("records.*.jsonl"):
            stale.unlink()
    barrier(info)
    resume = args.resume and (own.exists() or info.is_main)
    records = Records(own, header, key="key", resume=resume)
    done = dict(records.done)
    if args.resume:
        done.update(_other_records(out, own, header, read_records))
    work = []
    for task, which in ev.tasks(plan):
        ds = clean_set if which in ("clean", "corruption") else attack_set
        rows = ev.task_rows(task, plan, len(clean_set), len(attack_set))
        todo = [int(i) for i in rows if f"{task}:{int(i)}" not in done]
        work.append((task, ds, [] if args.report_only else todo[info.rank :: info.world]))
    total = sum(len(t) for _, _, t in work)
    progress = show_progress(args) and info.is_main
    bar = tqdm(total=total, desc="images", unit="image", disable=not progress, file=sys.stderr)
    predict = ev.predictor(model, device, plan.seed + info.rank)
    t0 = time.time()
    try:
        for task, ds, todo in work:
            bar.set_description(task)
            for s in range(0, len(todo), plan.batch_size):
                rows = todo[s : s + plan.batch_size]
                idx = torch.tensor(rows)
                try:
                    results = ev.run_task(task, predict, ds.images[idx], ds.labels[idx], plan, random, device, rows[0])
                except ValueError as e:
                    raise UserError(str(e)) from None
                for i, r in zip(rows, results):
                    records.write({"key": f"{task}:{i}", **r})
                bar.update(len(rows))
    finally:
        bar.close()
        records.close()
    barrier(info)
    if not info.is_main:
        return
    report = ev.summarize({**records.done, **_other_records(out, own, header, read_records)}, plan)
    report.update(model=source, data=clean_set.source, attack_data=attack_set.source, random_forward=random,
                  eot=header["eot"], seconds_this_run=round(time.time() - t0, 1),
                  akorn_version=__import__("akorn").__version__, torch_version=torch.__version__)  # fmt: skip
    table = format_report(report)
    write_text_atomically(out / "report.json", json.dumps(report, indent=1) + "\n")
    write_text_atomically(out / "report.md", table + "\n")
    if "reliability" in report:
        calibration.plot_reliability(report["reliability"], report["ece"], out / "reliability.png", cfg.model)
    print(table)
    print(f"written: {out}/report.json, report.md, reliability.png, records.jsonl")


def _other_records(out: Path, own: Path, header: dict, read_records) -> dict:
    """The records other ranks wrote for this evaluation (``key -> record``)."""
    done = {}
    for f in sorted(out.glob("records*.jsonl")):
        if f == own:
            continue
        theirs, items = read_records(f)
        if theirs != header:
            raise UserError(f"{f} is from another evaluation; remove it or evaluate into another --out")
        done.update({item["key"]: item for item in items})
    return done


def format_report(r: dict) -> str:
    def pct(b):
        return f"{100 * b['accuracy']:.1f} ± {100 * b['se']:.1f} (n={b['n']})"

    eps = r["eps"] * 255
    lines = ["| measure | accuracy % ± s.e. (n) |", "|---|---|"]
    if "clean" in r:
        lines.append(f"| clean | {pct(r['clean'])} |")
    for a, b in r["attacks"].items():
        lines.append(f"| {a} (L∞ {eps:.3g}/255) | {pct(b)} |")
    for c, v in r["corruptions"].items():
        sev = ", ".join(f"{100 * b['accuracy']:.1f}" for b in v["by_severity"].values())
        lines.append(f"| {c} (severities {', '.join(v['by_severity'])}) | {100 * v['accuracy']:.1f} [{sev}] |")
    if "corruption_mean" in r:
        lines.append(f"| corruption mean | {100 * r['corruption_mean']:.1f} |")
    if "ece" in r:
        lines.append(f"| ECE (15 bins) | {100 * r['ece']:.2f} % |")
    return "\n".join(lines)


def cmd_import(args):
    from akorn.engine.checkpoint import save_weights
    from akorn.engine.config import resolve, to_dict
    from akorn.engine.files import check_output_file, write_text_atomically
    from akorn.experiments.classify.authors import load_authors_checkpoint
    from akorn.experiments.classify.experiment import ClassifyConfig, ClassifyExperiment

    weights = check_output_file(args.out + ".safetensors", "weights file")
    record_file = check_output_file(args.out + ".json", "record file")
    sd, fields = load_authors_checkpoint(args.checkpoint)
    cfg = resolve(ClassifyConfig, [f"{k}={v}" for k, v in fields.items()], None, {})
    model = ClassifyExperiment().build_model(cfg)
    model.load_state_dict(sd)
    save_weights(model.state_dict(), weights)
    record = {"experiment": "classify", "config": to_dict(cfg), "source": f"the authors' checkpoint {args.checkpoint}"}
    write_text_atomically(record_file, json.dumps(record, indent=1) + "\n")
    print(f"written: {weights}, {record_file}")


def cmd_export(args):
    model, cfg, source = load_model(args.run)
    export(args, "classify", model, cfg, source)
