"""``akorn classify ...``: train an image classifier; evaluate its accuracy, robustness and calibration;
export a run as a shippable model."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path
from types import SimpleNamespace

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
from akorn.errors import UserError


def add_parser(sub, name: str, help: str):
    p = sub.add_parser(name, help=help)
    s = subcommands(p)
    t = train_parser(s, "train", "train a classifier (e.g. preset=cpu model=akorn data=cifar10)")
    t.set_defaults(func=cmd_train)

    e = s.add_parser("eval", help="clean accuracy, PGD / AutoAttack, corruptions and calibration, image by image")
    e.add_argument("run", help=MODEL_HELP)
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
    e.add_argument("--kuramoto-steps", type=int, default=0, metavar="T",
                   help="Kuramoto steps T at test time (0: the T the model was trained with)")  # fmt: skip
    e.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    add_quiet_option(e)
    e.add_argument("--device", default="auto", help=DEVICE_HELP)
    e.set_defaults(func=cmd_eval, extras=("classify",))

    add_audit_parser(s)

    add_export_parser(s, "classify")

    im = s.add_parser("import", help="a checkpoint of the authors' classifier as our model (NAME.safetensors + .json)")
    im.add_argument("checkpoint", help="their ema_<epoch>.pth, model.pth or a plain state dict")
    im.add_argument(
        "--out", required=True, help="NAME: writes NAME.safetensors and NAME.json (eval takes NAME.safetensors)"
    )
    im.set_defaults(func=cmd_import)


def add_audit_parser(s):
    a = s.add_parser(
        "audit",
        help="robustness checks that tell a robust decision from an attack that fails: EoT "
        "convergence, an ε sweep beside noise, fixed states, the mean predictor, transfer, Square",
    )
    a.add_argument("run", help=MODEL_HELP)
    a.add_argument("--data", default="", help="test images, e.g. the exact-pixel FILE.npz (default: as eval)")
    a.add_argument("--out", default="", help="folder for report.json, report.md, audit.png, records.jsonl")
    a.add_argument("--limit", type=int, default=500, help="images, spread evenly over the set (0: all)")
    a.add_argument("--eps", default="8/255", help="L-inf radius of the attacks, in (0, 1]")
    a.add_argument("--steps", type=int, default=20, help="PGD steps (step ε/3, no random start)")
    a.add_argument("--eot", default="1,4,16,64", help="EoT samples per PGD gradient, a comma list")
    a.add_argument("--apgd-eot", default="1,4,16", help="EoT samples of APGD-CE (pyautoattack)")
    a.add_argument(
        "--sweep", default="2/255,4/255,8/255,16/255,32/255,64/255,128/255,1", help="radii of the sweep, each in (0, 1]"
    )
    a.add_argument("--sweep-eot", type=int, default=4, help="EoT samples in the sweep and the transfer attack")
    a.add_argument("--means", default="1,8,32", help="M of the mean-of-M-passes predictor")
    a.add_argument("--square-queries", type=int, default=5000)
    a.add_argument("--sections", default="eot,sweep,fixed,mean,transfer,square", help="which checks to run")
    a.add_argument("--surrogate", default="", help="a classifier of the same classes whose PGD images transfer")
    a.add_argument("--batch-size", type=int, default=50)
    a.add_argument("--max-rows", type=int, default=512, help="images per forward pass of the batched EoT copies")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--resume", action="store_true", help="keep what OUT/records.jsonl holds and do the rest")
    a.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    add_quiet_option(a)
    a.add_argument("--device", default="auto", help=DEVICE_HELP)
    a.set_defaults(func=cmd_audit, extras=("classify",))


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise UserError(f"{flag} must be comma-separated integers, got {text!r}") from None


def _audit_plan(args):
    from fractions import Fraction

    from akorn.experiments.classify.audit import AuditPlan

    def radius(text, flag):
        try:
            return float(Fraction(text.strip()))
        except (ValueError, ZeroDivisionError):
            raise UserError(f"{flag} must be numbers or fractions such as 8/255, got {text!r}") from None

    plan = AuditPlan(
        eps=radius(args.eps, "--eps"),
        steps=args.steps,
        eot=_int_list(args.eot, "--eot"),
        apgd_eot=_int_list(args.apgd_eot, "--apgd-eot"),
        sweep=tuple(radius(v, "--sweep") for v in args.sweep.split(",") if v.strip()),
        sweep_eot=args.sweep_eot,
        means=_int_list(args.means, "--means"),
        square_queries=args.square_queries,
        sections=tuple(v.strip() for v in args.sections.split(",") if v.strip()),
        seed=args.seed,
        max_rows=args.max_rows,
    )
    plan.validate()
    for name in ("limit", "batch_size"):
        if getattr(args, name) < (0 if name == "limit" else 1):
            raise UserError(f"--{name.replace('_', '-')} must be {'0 or more' if name == 'limit' else 'at least 1'}")
    return plan


def _audit_surrogate(args, cfg, device):
    from akorn.experiments.model_files import load_model

    if not args.surrogate:
        return None
    other = load_model(args.surrogate, "classify")
    c = other.config
    if (c.classes, c.in_channels, c.image_size) != (cfg.classes, cfg.in_channels, cfg.image_size):
        raise UserError(
            f"--surrogate {args.surrogate}: {c.classes} classes of {c.in_channels}-channel "
            f"{c.image_size}px images; the audited model takes {cfg.classes} of {cfg.in_channels}-channel "
            f"{cfg.image_size}px"
        )
    return other.model.to(device)


def cmd_audit(args):
    import torch
    from tqdm import tqdm

    from akorn.engine.distributed import pick_device
    from akorn.engine.files import check_output_file, ensure_writable_dir, write_text_atomically
    from akorn.engine.records import Records
    from akorn.experiments.classify import audit
    from akorn.experiments.classify.evaluation import spread
    from akorn.experiments.model_files import load_model

    plan = _audit_plan(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    loaded = load_model(args.run, "classify")
    device = pick_device(args.device)
    model, cfg = loaded.model.to(device), loaded.config
    surrogate_model = _audit_surrogate(args, cfg, device)
    data_set, _ = _data_sets(SimpleNamespace(data=args.data, attack_data=""), cfg, loaded)
    rows = torch.as_tensor(spread(len(data_set), args.limit))
    images, labels = data_set.images[rows], data_set.labels[rows]
    default_out = Path(args.run) / "audit" if "run" in loaded.record else Path("classify-audit")
    out = Path(args.out) if args.out else default_out
    ensure_writable_dir(out)  # only now: bad input above leaves nothing behind
    for f in ("report.json", "report.md", "audit.png", "records.jsonl"):
        check_output_file(out / f, f)
    header = {
        "model": loaded.source,
        "data": data_set.source,
        "images": len(rows),
        "plan": repr(plan),
        "surrogate": args.surrogate,
    }
    records = Records(out / "records.jsonl", header, key="key", resume=args.resume)
    sampler = audit.Sampler(model, device, plan.seed, plan.max_rows)
    surrogate = audit.Sampler(surrogate_model, device, plan.seed + 1, plan.max_rows) if surrogate_model else None
    bar = tqdm(
        total=audit.total_work(plan, len(rows), surrogate is not None),
        unit="image",
        desc="audit",
        disable=not show_progress(args),
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    interrupted = False
    signal.signal(signal.SIGTERM, _stop_on_term)  # a stopped audit still reports what it recorded
    try:
        audit.run_audit(sampler, images, labels, plan, records, args.batch_size, surrogate, bar.update)
    except KeyboardInterrupt:
        interrupted = True  # report what the records hold; --resume does the rest
    finally:
        bar.close()
        records.close()
    summary = audit.summarize(list(records.done.values()), plan)
    summary.update(model=loaded.source, data=data_set.source, seconds=round(time.perf_counter() - t0, 1))
    summary["complete"] = not interrupted
    write_text_atomically(out / "report.json", json.dumps(summary, indent=1) + "\n")
    table = audit.format_report(summary, plan)
    write_text_atomically(out / "report.md", table)
    try:
        audit.plot(summary, plan, out / "audit.png")
    except ImportError:
        print('akorn: no audit.png: plots need matplotlib (pip install "akorn[viz]")', file=sys.stderr)
    print(table)
    print(f"written: {out}/report.json, report.md, audit.png, records.jsonl")
    if interrupted:
        raise UserError(f"interrupted: the report covers the records so far; finish with --resume --out {out}")


def _stop_on_term(signum, frame):
    raise KeyboardInterrupt


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


def _test_set(spec: str, cfg, split_default: str):
    from akorn.experiments.classify import data

    return data.load(spec or split_default, "test", cfg.image_size, cfg.workers, True)


def cmd_eval(args):
    import torch

    from akorn.engine.distributed import barrier, init_distributed, pick_device
    from akorn.experiments.classify import evaluation as ev
    from akorn.experiments.model_files import load_model

    plan = _plan(args)
    _check_eval_args(args)
    words = [f"steps={args.kuramoto_steps}"] if args.kuramoto_steps else []
    loaded = load_model(args.run, "classify", words=words, weights=args.weights, step=args.step)
    if args.kuramoto_steps and loaded.config.model not in ("akorn", "akorn-attn"):
        raise UserError(f"--kuramoto-steps sets an AKOrN's T; {args.run} is a {loaded.config.model}")
    default_out = Path(args.run) / "robustness" if "run" in loaded.record else Path("classify-eval")
    out = Path(args.out) if args.out else default_out
    info, device = init_distributed(pick_device(args.device))
    model, cfg = loaded.model.to(device), loaded.config
    clean_set, attack_set = _data_sets(args, cfg, loaded)
    _prepare_out(out, plan, clean_set)
    random = ev.is_random(model)
    header = {
        "model": loaded.source,
        "weights": args.weights,
        "data": clean_set.source,
        "attack_data": attack_set.source,
        **{k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(plan).items()},
        "eot": plan.eot if random else 1,
        **({"kuramoto_steps": args.kuramoto_steps} if args.kuramoto_steps else {}),
    }
    # Under torchrun every rank takes every world-th image of each task and keeps its own records file;
    # rank 0 reads them all for the report (and a resumed evaluation skips what any of them holds).
    own = out / ("records.jsonl" if info.is_main else f"records.{info.rank}.jsonl")
    if info.is_main and not args.resume:
        for stale in out.glob("records.*.jsonl"):
            stale.unlink()
    barrier(info)
    t0 = time.time()
    records = _run_tasks(args, plan, model, device, info, own, header, random, clean_set, attack_set)
    barrier(info)
    if not info.is_main:
        return
    from akorn.engine.records import read_records

    report = ev.summarize({**records.done, **_other_records(out, own, header, read_records)}, plan)
    report.update(model=loaded.source, data=clean_set.source, attack_data=attack_set.source, random_forward=random,
                  eot=header["eot"], seconds_this_run=round(time.time() - t0, 1),
                  akorn_version=akorn_version(), torch_version=torch.__version__)  # fmt: skip
    _write_report(report, out, cfg)


def akorn_version() -> str:
    import akorn

    return akorn.__version__


def _check_eval_args(args):
    import torch

    if args.report_only and not args.resume:
        raise UserError("--report-only reports the records of an earlier evaluation: give --resume too")
    if args.threads < 0:
        raise UserError(f"--threads must be 0 (torch's default) or positive, got {args.threads}")
    if args.kuramoto_steps < 0:
        raise UserError(f"--kuramoto-steps must be 0 (as trained) or positive, got {args.kuramoto_steps}")
    if args.threads:
        torch.set_num_threads(args.threads)


def _data_sets(args, cfg, loaded):
    """The clean and attack test sets, checked against what the model takes."""
    default_data = "cifar10" if loaded.source.startswith("pretrained:") else (cfg.test_data or cfg.data)
    clean_set = _test_set(args.data, cfg, default_data)
    attack_set = _test_set(args.attack_data, cfg, args.data or default_data) if args.attack_data else clean_set
    for name, ds in (("--data", clean_set), ("--attack-data", attack_set)):
        if (len(ds.class_names), ds.channels, ds.size[0]) != (cfg.classes, cfg.in_channels, cfg.image_size):
            raise UserError(
                f"{name} {ds.source}: {len(ds.class_names)} classes of {ds.channels}-channel {ds.size[0]}px images; "
                f"the model takes {cfg.classes} classes of {cfg.in_channels}-channel {cfg.image_size}px images"
            )
    return clean_set, attack_set


def _prepare_out(out: Path, plan, clean_set):
    from akorn.engine.files import check_output_file, ensure_writable_dir

    if plan.corruptions:
        from akorn.experiments.classify.corruptions import check_size

        check_size(clean_set.size)
    ensure_writable_dir(out)  # only now: bad input above leaves nothing behind
    for f in ("report.json", "report.md", "reliability.png", "records.jsonl"):
        check_output_file(out / f, f)


def _run_tasks(args, plan, model, device, info, own: Path, header: dict, random: bool, clean_set, attack_set):
    """Every image of every task this rank has not recorded yet; returns the records (closed)."""
    import torch
    from tqdm import tqdm

    from akorn.engine.records import Records, read_records
    from akorn.experiments.classify import evaluation as ev

    resume = args.resume and (own.exists() or info.is_main)
    records = Records(own, header, key="key", resume=resume)
    done = dict(records.done)
    if args.resume:
        done.update(_other_records(own.parent, own, header, read_records))
    work = []
    for task, which in ev.tasks(plan):
        ds = clean_set if which in ("clean", "corruption") else attack_set
        rows = ev.task_rows(task, plan, len(clean_set), len(attack_set))
        todo = [int(i) for i in rows if f"{task}:{int(i)}" not in done]
        work.append((task, ds, [] if args.report_only else todo[info.rank :: info.world]))
    progress = show_progress(args) and info.is_main
    bar = tqdm(total=sum(len(t) for _, _, t in work), desc="images", unit="image", disable=not progress,
               file=sys.stderr)  # fmt: skip
    predict = ev.predictor(model, device, plan.seed + info.rank)
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
    return records


def _write_report(report: dict, out: Path, cfg):
    from akorn.engine.files import write_text_atomically
    from akorn.experiments.classify import calibration

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
    from akorn.experiments.model_files import load_model

    loaded = load_model(args.checkpoint, "classify")
    write_imported(loaded, args.out, f"the authors' checkpoint {args.checkpoint}")
