"""An audit of a classifier's robustness that can tell a robust decision from an attack that fails.

A random forward pass (AKOrN draws its initial oscillator states) hides gradients from an attack
that samples too few of them, and so looks robust. Every section here is a check that could
refute that (Carlini et al. 2019, "On evaluating adversarial robustness"):

``eot``            PGD and APGD against the number E of EoT samples per gradient (PGD batches the
                   E copies of every image into one forward pass)
``sweep``          PGD over a range of L-inf radii, beside uniform noise of the same radius: an
                   attack that works takes accuracy to about 0 at large radii
``fixed``          PGD on the model made deterministic (initial states fixed per image), evaluated
                   under those states and under fresh ones
``mean``           the defender's best predictor, the mean probability of M forward passes,
                   attacked through that same mean
``transfer``       images made on a surrogate model (another classifier of the same classes)
``square``         the gradient-free Square attack with a stated query budget (pyautoattack)

Every PGD step records the attack's loss, so a run also says whether the loss rose. Each image's
result is one record (``section``, ``setting``, image index, correct); an interrupted audit
resumes from its records.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from akorn.errors import UserError
from akorn.experiments.classify.attacks import keep_global_rng
from akorn.experiments.classify.evaluation import is_random

SECTIONS = ("eot", "sweep", "fixed", "mean", "transfer", "square")


@dataclass(frozen=True)
class AuditPlan:
    eps: float = 8 / 255
    steps: int = 20
    eot: tuple[int, ...] = (1, 4, 16, 64)
    apgd_eot: tuple[int, ...] = (1, 4, 16)
    sweep: tuple[float, ...] = (2 / 255, 4 / 255, 8 / 255, 16 / 255, 32 / 255, 64 / 255, 128 / 255, 1.0)
    sweep_eot: int = 4
    means: tuple[int, ...] = (1, 8, 32)
    square_queries: int = 5000
    sections: tuple[str, ...] = SECTIONS
    seed: int = 0
    max_rows: int = 512  # images per forward pass when the E copies are batched

    def validate(self):
        for name, eps in [("eps", self.eps), *(("sweep", e) for e in self.sweep)]:
            if not 0 < eps <= 1:
                raise UserError(f"--{name}: every radius must be in (0, 1], got {eps}")
        for name in ("eot", "apgd_eot", "means"):
            values = getattr(self, name)
            if not values or min(values) < 1:
                raise UserError(f"--{name.replace('_', '-')}: every value must be at least 1, got {list(values)}")
        for name in ("steps", "sweep_eot", "max_rows"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if "square" in self.sections and self.square_queries < 1:
            raise UserError(f"--square-queries must be at least 1, got {self.square_queries}")
        bad = [s for s in self.sections if s not in SECTIONS]
        if bad:
            raise UserError(f"unknown audit section {bad[0]!r}; choose from {', '.join(SECTIONS)}")


class Sampler:
    """A classifier's forward passes: fresh initial states from one stream, or states fixed per image
    (the same seed for every call on the same batch)."""

    def __init__(self, model: torch.nn.Module, device: torch.device, seed: int, max_rows: int):
        self.model, self.device, self.max_rows = model.eval(), device, max_rows
        self.random = is_random(model)
        self.stream = torch.Generator(device).manual_seed(seed)

    def logits(self, x: torch.Tensor, copies: int = 1, fixed_seed: int | None = None) -> torch.Tensor:
        """``(copies, B, K)`` logits of ``copies`` forward passes of ``x`` ``(B, 3, H, W)``, batched
        ``max_rows`` images at a time; differentiable in ``x``."""
        if not self.random:
            copies = 1  # a deterministic model's passes are all the same
        g = self.stream if fixed_seed is None else torch.Generator(self.device).manual_seed(fixed_seed)
        rep = x.unsqueeze(0).expand(copies, *x.shape).reshape(copies * len(x), *x.shape[1:])  # (E·B, 3, H, W)
        call = (lambda part: self.model(part, g)) if self.random else self.model
        out = torch.cat([call(part).float() for part in rep.split(self.max_rows)])
        return out.view(copies, len(x), -1)

    def mean_log_probs(self, x: torch.Tensor, copies: int, fixed_seed: int | None = None) -> torch.Tensor:
        """``log`` of the mean probability over ``copies`` passes: the defender's averaged predictor."""
        logits = self.logits(x, copies, fixed_seed)
        return torch.logsumexp(logits.log_softmax(-1), 0) - math.log(len(logits))


def eot_gradient(loss_of: Callable, x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Gradient of ``loss_of(x)`` (a sum over images) with respect to ``x``, and the loss per image."""
    xr = x.detach().requires_grad_(True)
    with torch.enable_grad():
        loss = loss_of(xr)
        (g,) = torch.autograd.grad(loss, xr)
    return g, float(loss.detach()) / len(x)


def pgd(loss_of: Callable, x: torch.Tensor, eps: float, steps: int) -> tuple[torch.Tensor, list[float]]:
    """L-inf PGD from ``x`` as in the authors' evaluation (no random start, step ``eps / 3``), and the
    loss per image before every step and after the last."""
    adv, losses = x.clone(), []
    for _ in range(steps):
        g, loss = eot_gradient(loss_of, adv)
        losses.append(loss)
        adv = torch.min(torch.max(adv + eps / 3 * g.sign(), x - eps), x + eps).clamp(0, 1).detach()
    with torch.no_grad():
        losses.append(float(loss_of(adv)) / len(x))
    return adv, losses


def cross_entropy_of(sampler: Sampler, y: torch.Tensor, copies: int, fixed_seed: int | None = None) -> Callable:
    """The mean over ``copies`` fresh (or fixed) passes of the summed cross-entropy: its gradient is
    the EoT gradient over ``copies`` samples."""

    def loss_of(x):
        logits = sampler.logits(x, copies, fixed_seed)  # (E, B, K)
        e = len(logits)
        return F.cross_entropy(logits.flatten(0, 1), y.repeat(e), reduction="sum") / e

    return loss_of


def mean_cross_entropy_of(sampler: Sampler, y: torch.Tensor, copies: int) -> Callable:
    def loss_of(x):
        return F.nll_loss(sampler.mean_log_probs(x, copies), y, reduction="sum")

    return loss_of


def correct_fresh(sampler: Sampler, x: torch.Tensor, y: torch.Tensor) -> list[bool]:
    with torch.no_grad():
        return (sampler.logits(x)[0].argmax(1) == y).cpu().tolist()


def radius_name(eps: float) -> str:
    return f"{eps * 255:.4g}/255"


def settings(plan: AuditPlan, surrogate: bool) -> list[tuple[str, list[str]]]:
    """``(section, settings it records)`` in the order they run; a section with several settings
    computes them from one attack."""
    out = [("clean", ["clean"])]
    if "eot" in plan.sections:
        out += [("eot", [f"pgd E={e}"]) for e in plan.eot]
        out += [("eot", [f"apgd E={e}"]) for e in plan.apgd_eot]
    if "sweep" in plan.sections:
        for eps in plan.sweep:
            out += [("sweep", [f"pgd eps={radius_name(eps)}"]), ("sweep", [f"noise eps={radius_name(eps)}"])]
    if "fixed" in plan.sections:
        out.append(("fixed", ["fixed states: attacked states", "fixed states: fresh states"]))
    if "mean" in plan.sections:
        out += [("mean", [f"mean M={m}: clean", f"mean M={m}: attacked"]) for m in plan.means]
    if "transfer" in plan.sections and surrogate:
        out.append(("transfer", ["transfer from surrogate"]))
    if "square" in plan.sections:
        out.append(("square", [f"square q={plan.square_queries}"]))
    return out


def run_setting(
    section: str,
    names: list[str],
    sampler: Sampler,
    x,
    y,
    plan: AuditPlan,
    batch_seed: int,
    surrogate: Sampler | None = None,
) -> dict[str, tuple[list[bool], list[float] | None]]:
    """One batch of one section: ``setting -> (correct per image, attack loss per step or None)``."""
    name = names[0]
    if section == "clean":
        return {name: (correct_fresh(sampler, x, y), None)}
    if name.startswith(("pgd E=", "pgd eps=")):
        copies = int(name.split("=")[1]) if name.startswith("pgd E=") else plan.sweep_eot
        eps = plan.eps if name.startswith("pgd E=") else _radius_of(name, plan)
        adv, losses = pgd(cross_entropy_of(sampler, y, copies), x, eps, plan.steps)
        return {name: (correct_fresh(sampler, adv, y), losses)}
    if name.startswith("noise eps="):
        eps = _radius_of(name, plan)
        g = torch.Generator(x.device).manual_seed(batch_seed)
        noisy = (x + eps * (2 * torch.rand(x.shape, generator=g, device=x.device) - 1)).clamp(0, 1)
        return {name: (correct_fresh(sampler, noisy, y), None)}
    if name.startswith("apgd E="):
        return {name: (correct_fresh(sampler, _apgd(sampler, x, y, plan, int(name.split("=")[1])), y), None)}
    if section == "fixed":
        adv, losses = pgd(cross_entropy_of(sampler, y, 1, fixed_seed=batch_seed), x, plan.eps, plan.steps)
        with torch.no_grad():
            same = (sampler.logits(adv, 1, batch_seed)[0].argmax(1) == y).cpu().tolist()
        return {names[0]: (same, losses), names[1]: (correct_fresh(sampler, adv, y), None)}
    if section == "mean":
        m = int(name.split("=")[1].split(":")[0])
        adv, losses = pgd(mean_cross_entropy_of(sampler, y, m), x, plan.eps, plan.steps)
        with torch.no_grad():
            clean = (sampler.mean_log_probs(x, m).argmax(1) == y).cpu().tolist()
            attacked = (sampler.mean_log_probs(adv, m).argmax(1) == y).cpu().tolist()
        return {names[0]: (clean, None), names[1]: (attacked, losses)}
    if section == "transfer":
        adv, losses = pgd(cross_entropy_of(surrogate, y, plan.sweep_eot), x, plan.eps, plan.steps)
        return {name: (correct_fresh(sampler, adv, y), losses)}
    if section == "square":
        return {name: (correct_fresh(sampler, _square(sampler, x, y, plan), y), None)}
    raise ValueError(f"unknown audit setting {name!r}")


def _radius_of(name: str, plan: AuditPlan) -> float:
    label = name.split("=")[1]
    return next(e for e in plan.sweep if radius_name(e) == label)


def _apgd(sampler: Sampler, x, y, plan: AuditPlan, copies: int) -> torch.Tensor:
    """APGD-CE through pyautoattack, its EoT over ``copies`` passes (sequential: its own loop)."""
    from pyautoattack.autopgd_base import APGDAttack

    attack = APGDAttack(
        lambda t: sampler.logits(t)[0],
        n_iter=plan.steps,
        norm="Linf",
        eps=plan.eps,
        seed=plan.seed,
        loss="ce",
        eot_iter=copies,
        device=x.device,
    )
    with keep_global_rng():
        return attack.perturb(x, y).detach()


def _square(sampler: Sampler, x, y, plan: AuditPlan) -> torch.Tensor:
    from pyautoattack.square import SquareAttack

    predict = lambda t: sampler.logits(t)[0]  # noqa: E731
    attack = SquareAttack(
        predict, norm="Linf", n_queries=plan.square_queries, eps=plan.eps, seed=plan.seed, device=x.device
    )
    with torch.no_grad(), keep_global_rng():
        return attack.perturb(x, y).detach()


def accuracy(correct: list[bool]) -> dict:
    n = len(correct)
    p = sum(correct) / n if n else float("nan")
    return {"accuracy": p, "se": math.sqrt(p * (1 - p) / n) if n else float("nan"), "n": n}


def loss_check(traces: list[list[float]]) -> dict:
    """How often the attack's loss rose: per step, and from the first step to the last, over batches."""
    steps = [b > a for t in traces for a, b in zip(t, t[1:])]
    return {
        "steps_with_loss_increase": sum(steps) / len(steps) if steps else float("nan"),
        "batches_ending_above_start": sum(t[-1] > t[0] for t in traces) / len(traces) if traces else float("nan"),
        "mean_loss_first_last": [sum(t[0] for t in traces) / len(traces), sum(t[-1] for t in traces) / len(traces)],
    }


def summarize(records: list[dict], plan: AuditPlan) -> dict:
    """Accuracy ± standard error per setting, the loss check of every attack, and the sanity flag
    of the radius sweep."""
    by_setting: dict[str, list[bool]] = {}
    traces: dict[str, list[list[float]]] = {}
    for r in records:
        if "correct" in r:
            by_setting.setdefault(r["setting"], []).append(r["correct"])
        elif "losses" in r:
            traces.setdefault(r["setting"], []).append(r["losses"])
    table = {name: accuracy(c) for name, c in by_setting.items()}
    summary = {"settings": table, "loss_check": {k: loss_check(v) for k, v in traces.items()}}
    largest = max(plan.sweep) if "sweep" in plan.sections else None
    key = f"pgd eps={radius_name(largest)}" if largest else None
    if key in table:
        summary["sweep_sanity"] = {
            "eps": largest,
            "accuracy": table[key]["accuracy"],
            "passed": table[key]["accuracy"] <= 0.05,
        }
    summary["verdict"] = verdict(summary, plan)
    return summary


def record_key(setting: str, index: int) -> str:
    return f"{setting}|{index}"


def run_audit(
    sampler: Sampler,
    images: torch.Tensor,
    labels: torch.Tensor,
    plan: AuditPlan,
    records,
    batch_size: int,
    surrogate: Sampler | None = None,
    progress: Callable = lambda n: None,
):
    """Every setting on every image not yet in ``records`` (a :class:`Records` keyed by ``key``).
    Images are ``uint8`` ``(N, H, W, 3)`` as the data sets hold them; a batch's attack loss trace is one
    record with ``losses``."""
    device = sampler.device
    for section, names in settings(plan, surrogate is not None):
        for start in range(0, len(images), batch_size):
            rows = list(range(start, min(start + batch_size, len(images))))
            if all(record_key(n, i) in records.done for n in names for i in rows):
                progress(len(rows))
                continue
            x = images[start : rows[-1] + 1].to(device)
            x = x.permute(0, 3, 1, 2).float().contiguous() / 255  # (B, H, W, 3) uint8 -> (B, 3, H, W)
            y = labels[start : rows[-1] + 1].to(device)
            batch_seed = plan.seed * 1_000_003 + start
            results = run_setting(section, names, sampler, x, y, plan, batch_seed, surrogate)
            for name, (correct, losses) in results.items():
                for i, c in zip(rows, correct):
                    records.write({"key": record_key(name, i), "section": section, "setting": name, "correct": bool(c)})
                if losses is not None:
                    records.write(
                        {"key": record_key(name, -1 - start), "section": section, "setting": name, "losses": losses}
                    )
            progress(len(rows))


def total_work(plan: AuditPlan, n_images: int, surrogate: bool) -> int:
    return len(settings(plan, surrogate)) * n_images


def _fmt(entry: dict | None) -> str:
    if entry is None:
        return "n/a"
    return f"{100 * entry['accuracy']:.1f} ± {100 * entry['se']:.1f} (n={entry['n']})"


def verdict(summary: dict, plan: AuditPlan) -> str:
    """One paragraph, generated from the numbers: does accuracy under attack survive the checks, and
    where does it come from."""
    t = summary["settings"]
    get = lambda name: t.get(name, {}).get("accuracy")  # noqa: E731
    clean = get("clean")
    parts = [f"Clean accuracy is {_fmt(t.get('clean'))}."]
    eots = [e for e in plan.eot if f"pgd E={e}" in t]
    if eots:
        first, last = t[f"pgd E={eots[0]}"], t[f"pgd E={eots[-1]}"]
        gap, se = first["accuracy"] - last["accuracy"], math.hypot(first["se"], last["se"])
        parts.append(
            f"Under PGD-{plan.steps} at {radius_name(plan.eps)}, accuracy goes from "
            f"{100 * first['accuracy']:.1f}% with E={eots[0]} EoT samples to "
            f"{100 * last['accuracy']:.1f}% with E={eots[-1]}"
            + (
                ": more samples make the attack stronger, so few-sample figures overstate robustness."
                if gap > 2 * se
                else f", within two standard errors ({100 * 2 * se:.1f} points)."
            )
        )
        rising = summary["loss_check"].get(f"pgd E={eots[-1]}", {}).get("steps_with_loss_increase")
        if rising is not None and rising < 0.8:
            parts.append(
                f"Its loss rose in only {100 * rising:.0f}% of the steps: the sampled gradients do not point uphill "
                "for the model's random forward pass, which is what a failing attack looks like."
            )
    sanity = summary.get("sweep_sanity")
    if sanity:
        if sanity["passed"]:
            parts.append(
                f"The radius sweep reaches {100 * sanity['accuracy']:.1f}% at ε={radius_name(sanity['eps'])}, "
                "so the gradient attack works when it has room."
            )
        else:
            parts.append(
                f"WARNING: the radius sweep leaves {100 * sanity['accuracy']:.1f}% at ε={radius_name(sanity['eps'])}: "
                "the attack fails, and no figure here is evidence of robustness."
            )
    same, fresh = get("fixed states: attacked states"), get("fixed states: fresh states")
    if same is not None:
        parts.append(
            f"With the initial states fixed, PGD leaves {100 * same:.1f}% on those states and "
            f"{100 * fresh:.1f}% under fresh states"
            + (
                "; the gap is protection from the randomness of the states, not a robust decision function."
                if fresh - same > 0.05
                else "."
            )
        )
    means = [(m, get(f"mean M={m}: attacked")) for m in plan.means if get(f"mean M={m}: attacked") is not None]
    if means:
        parts.append(
            "Attacked through the mean of M passes: " + ", ".join(f"M={m} {100 * a:.1f}%" for m, a in means) + "."
        )
    for name in t:
        if name.startswith(("square", "transfer")):
            parts.append(f"{name}: {_fmt(t[name])}.")
    at_eps = [get(n) for n in t if n.startswith(("pgd E=", "apgd E=", "square", "fixed states: attacked"))]
    worst = min([a for a in at_eps if a is not None], default=None)
    if worst is not None and clean:
        parts.append(
            f"The strongest attack at {radius_name(plan.eps)} leaves {100 * worst:.1f}% "
            f"({100 * worst / clean:.0f}% of clean accuracy): an upper bound on the robust accuracy"
            + (
                ", which the checks above support."
                if sanity and sanity["passed"]
                else ", and without a passing radius sweep not evidence of robustness."
            )
        )
    return " ".join(parts)


def format_report(summary: dict, plan: AuditPlan) -> str:
    lines = ["| setting | accuracy % ± se | attack loss first → last | steps with loss rising |", "|---|---|---|---|"]
    for name, entry in summary["settings"].items():
        lc = summary["loss_check"].get(name)
        loss = f"{lc['mean_loss_first_last'][0]:.3f} → {lc['mean_loss_first_last'][1]:.3f}" if lc else ""
        rising = f"{100 * lc['steps_with_loss_increase']:.0f}%" if lc else ""
        lines.append(f"| {name} | {_fmt(entry)} | {loss} | {rising} |")
    return "\n".join(lines) + "\n\n" + summary["verdict"] + "\n"


def plot(summary: dict, plan: AuditPlan, path) -> None:
    """EoT convergence (left) and the radius sweep beside uniform noise (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = summary["settings"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.4))
    for kind, values in (("pgd", plan.eot), ("apgd", plan.apgd_eot)):
        pts = [(e, t[f"{kind} E={e}"]) for e in values if f"{kind} E={e}" in t]
        if pts:
            a.errorbar(
                [e for e, _ in pts],
                [100 * p["accuracy"] for _, p in pts],
                yerr=[100 * p["se"] for _, p in pts],
                marker="o",
                capsize=3,
                label=kind.upper(),
            )
    a.set_xscale("log", base=2)
    a.set(xlabel="EoT samples per gradient", ylabel="accuracy %", title=f"EoT convergence, ε={radius_name(plan.eps)}")
    a.legend()
    for kind in ("pgd", "noise"):
        pts = [(e, t[f"{kind} eps={radius_name(e)}"]) for e in plan.sweep if f"{kind} eps={radius_name(e)}" in t]
        if pts:
            b.errorbar(
                [255 * e for e, _ in pts],
                [100 * p["accuracy"] for _, p in pts],
                yerr=[100 * p["se"] for _, p in pts],
                marker="o",
                capsize=3,
                label="PGD" if kind == "pgd" else "uniform noise",
            )
    b.set_xscale("log", base=2)
    b.set(xlabel="ε × 255", ylabel="accuracy %", title="radius sweep")
    b.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
