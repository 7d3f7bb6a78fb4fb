"""Sudoku inference: test-time extension, energy or confidence voting over random starts, early exit.

Boards x candidates are flattened into rows and processed in chunks of ``chunk`` rows, so
memory is bounded by the chunk, not by K or the number of boards.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from akorn.oscillators import normalize
from akorn.sudoku.models import SudokuAKOrN


@dataclass
class Prediction:
    digits: torch.Tensor  # (n, 81) predicted digits 1..9 (clues copied through)
    confidence: torch.Tensor  # (n,) mean max-probability over blank cells of the chosen candidate
    steps_run: float  # mean number of Kuramoto steps each candidate ran (less than T after early exit)


def _confidence(logits: torch.Tensor, quiz: torch.Tensor) -> torch.Tensor:
    p = logits.float().softmax(-1).amax(-1)  # (R, 81)
    blank = (quiz == 0).float()
    return (p * blank).sum(1) / blank.sum(1).clamp_min(1)


@torch.no_grad()
def run_akorn(model: SudokuAKOrN, quiz: torch.Tensor, steps: int, generator: torch.Generator,
              tol: float = 0.0, energy_reduce: str = "sum"):
    """One batch of rows: logits, energy score (lower is better) and the steps each row ran.

    Energies follow the model's bookkeeping (reference: ``E(x_0) .. E(x_{T-1})`` plus a 0);
    ``energy_reduce`` = ``sum`` over steps or ``last``.

    With ``tol > 0`` a row retires as soon as no element of its state moved by ``tol`` or more in
    one step, and the remaining rows run on without it, so an easy board does not wait for the
    hard boards of its chunk. A retired row counts as having stayed where it stopped: for ``sum``
    its last energy is added once for every step it skipped, so the candidates of one board stay
    comparable whatever step each of them stopped at.
    """
    layer = model.kuramoto
    c = model.stimulus(quiz)
    x = layer.to_state(normalize(model.initial_state(quiz, c, generator), layer.n, -1))
    c = layer.to_state(c)
    omega, gamma = layer.omega(), layer.gamma
    rows = quiz.shape[0]
    total = torch.zeros(rows, device=quiz.device)
    last = torch.zeros(rows, device=quiz.device)
    ran = torch.full((rows,), steps, dtype=torch.long, device=quiz.device)
    if tol <= 0:
        for _ in range(steps):
            x, e = layer._step_fn(x, c, omega, gamma)
            total = total + e
        last = e if steps else last
    else:
        # Active rows live compacted in (xa, ca); every row's final state lands in x, a retiring
        # row's when it retires and the rest after the last step.
        active = torch.arange(rows, device=quiz.device)
        xa, ca = x, c
        x = torch.empty_like(x)
        for t in range(steps):
            x_next, e = layer._step_fn(xa, ca, omega, gamma)
            e = e.float()
            total[active] += e
            last[active] = e
            settled = (x_next - xa).abs().flatten(1).amax(1) < tol
            if bool(settled.any()):
                done = active[settled]
                x[done] = x_next[settled]
                ran[done] = t + 1
                total[done] += e[settled] * (steps - t - 1)
                keep = ~settled
                active, xa, ca = active[keep], x_next[keep], ca[keep]
                if active.numel() == 0:
                    break
            else:
                xa = x_next
        if active.numel():
            x[active] = xa
    if layer.energy_mode == "states":
        last = layer.energy(x, c)
        total = total + last
    score = total if energy_reduce == "sum" else last
    return model.decode(layer.from_state(x)), score, ran


@torch.no_grad()
def predict(model, quiz: torch.Tensor, steps: int | None = None, candidates: int = 1, select: str = "energy",
            energy_reduce: str = "sum", chunk: int = 100, tol: float = 0.0, seed: int = 0,
            precision: str = "fp32") -> Prediction:
    """Solve ``quiz`` ``(n, 81)``: K random starts per board, keep the lowest-energy or most confident one."""
    if select not in ("energy", "confidence"):
        raise ValueError(f"select must be 'energy' or 'confidence', got {select!r}")
    if energy_reduce not in ("sum", "last"):
        raise ValueError(f"energy_reduce must be 'sum' or 'last', got {energy_reduce!r}")
    if candidates < 1 or chunk < 1:
        raise ValueError("candidates and chunk must be positive")
    device = next(model.parameters()).device
    quiz = quiz.to(device).long()
    T = model.steps if steps is None else steps
    is_akorn = isinstance(model, SudokuAKOrN)
    K = candidates if is_akorn else 1
    if not is_akorn and select == "energy" and candidates > 1:
        select = "confidence"
    n = quiz.shape[0]
    rows = quiz.repeat_interleave(K, 0)  # board-major: rows b*K .. b*K+K-1 belong to board b
    gen = torch.Generator(device=device if device.type == "cuda" else "cpu").manual_seed(seed)
    all_scores, all_conf, all_digits = [], [], []
    steps_log = []
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    for start in range(0, rows.shape[0], chunk):
        q = rows[start : start + chunk]
        with autocast:
            if is_akorn:
                logits, score, ran = run_akorn(model, q, T, gen, tol, energy_reduce)
            else:
                logits, score = model(q, steps=T), torch.zeros(q.shape[0], device=device)
                ran = torch.full((q.shape[0],), T)
        steps_log.append(ran.float().cpu())
        conf = _confidence(logits, q)
        all_scores.append(score.float())
        all_conf.append(conf)
        all_digits.append(torch.where(q > 0, q, logits.argmax(-1) + 1))
    scores = torch.cat(all_scores).view(n, K)
    confs = torch.cat(all_conf).view(n, K)
    digits = torch.cat(all_digits).view(n, K, 81)
    pick = scores.argmin(1) if select == "energy" else confs.argmax(1)
    best_digits = digits[torch.arange(n, device=device), pick]
    best_conf = confs[torch.arange(n, device=device), pick]
    return Prediction(best_digits.cpu(), best_conf.cpu(), float(torch.cat(steps_log).mean()))


def accuracy(pred: torch.Tensor, solution: torch.Tensor, quiz: torch.Tensor) -> dict:
    """Board accuracy (every blank right), cell accuracy over blanks, and board accuracy by number of givens."""
    solution, quiz = solution.long(), quiz.long()
    blank = quiz == 0
    right = (pred == solution) | ~blank
    boards = right.all(1)
    cells = ((pred == solution) & blank).sum().item() / max(1, blank.sum().item())
    givens = (~blank).sum(1)
    by_givens = {}
    for g in sorted(set(givens.tolist())):
        m = givens == g
        by_givens[int(g)] = {"boards": int(m.sum()), "board_acc": float(boards[m].float().mean())}
    return {"board_acc": float(boards.float().mean()), "cell_acc": cells, "boards": int(len(pred)),
            "by_givens": by_givens}
