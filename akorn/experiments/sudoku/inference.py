"""Sudoku inference: test-time extension, voting over random starts, early exit.

Boards x candidates are flattened into rows (board-major) and run through a pool of ``chunk``
slots. A row leaves the pool when it has run T steps or exits early, and the next waiting row
takes its slot, so memory is bounded by the pool, not by K or the number of boards, and an easy
board's early exits make room for other boards instead of leaving the batch half empty. Once no
row waits, freed slots are dropped, but the pool only shrinks to sizes on a fixed ladder
(``pool_sizes``), the freed slots in between running on unread: every new batch size is a new
set of matmul primitives and buffer sizes, and a pool shrinking one row at a time grew the
process's memory with every board.

Early exits (all off by default, where every row runs exactly T steps):

* ``tol``: the row's state moved by less than ``tol`` (max over elements) in one step. A model
  with natural frequencies (ω ≠ 0) keeps rotating, so for the trained models this never fires;
* ``stable``: the row's decoded digits have not changed for ``stable`` steps, looked at every
  ``check_every`` steps of the row's own age (8 by default: a readout costs about one step, and
  an even interval because the trained models read out after even steps, their odd-step
  readouts being different grids);
* ``select="valid"``: a board stops as soon as one of its rows decodes, at a check, to a grid that
  obeys every rule; its other rows stop too and its waiting rows never start.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, fields
from functools import cache

import numpy as np
import torch

from akorn.core.layer import OscillatorState
from akorn.experiments.sudoku.models import SudokuAKOrN

SELECTS = ("energy", "confidence", "valid")


@dataclass
class Prediction:
    digits: torch.Tensor  # (n, 81) predicted digits 1..9 (clues copied through)
    confidence: torch.Tensor  # (n,) mean max-probability over blank cells of the chosen candidate
    steps_run: float  # mean Kuramoto steps per candidate (less than T after early exits; 0 for one never started)
    valid: torch.Tensor  # (n,) the chosen grid obeys every rule (the clues are copied through, so it solves the puzzle)
    chosen: torch.Tensor | None = None  # (n,) which start k was kept
    score: torch.Tensor | None = None  # (n,) its energy score (lower is better; 0 for baselines)
    board_steps: torch.Tensor | None = None  # (n,) mean steps run by the board's starts


@dataclass
class Trajectories:
    """What each row ended with."""

    digits: torch.Tensor  # (R, 81) long
    confidence: torch.Tensor  # (R,)
    score: torch.Tensor  # (R,) energy score, lower is better
    ran: torch.Tensor  # (R,) steps run
    valid: torch.Tensor  # (R,) bool


def _confidence(logits: torch.Tensor, quiz: torch.Tensor) -> torch.Tensor:
    p = logits.float().softmax(-1).amax(-1)  # (R, 81)
    blank = (quiz == 0).float()
    return (p * blank).sum(1) / blank.sum(1).clamp_min(1)


_UNITS: dict = {}


def _units(device) -> torch.Tensor:
    """(27, 81) membership of the cells in the 9 rows, 9 columns and 9 boxes."""
    key = str(device)
    if key not in _UNITS:
        m = torch.zeros(27, 81)
        for i in range(81):
            r, c = divmod(i, 9)
            m[r, i] = m[9 + c, i] = m[18 + 3 * (r // 3) + c // 3, i] = 1
        _UNITS[key] = m.to(device)
    return _UNITS[key]


@cache
def pool_sizes(slots: int) -> tuple[int, ...]:
    """The sizes a pool of ``slots`` shrinks through, largest first: ``slots``, then 1, 2, 3 and
    4, 5, 6, 7 times each power of two below it, so at most a quarter of a shrunk pool is idle."""
    ladder = {slots} | {n for n in (1, 2, 3) if n < slots}
    ladder |= {m << j for j in range(slots.bit_length()) for m in (4, 5, 6, 7) if (m << j) < slots}
    return tuple(sorted(ladder, reverse=True))


def _ladder_size(slots: int, n: int, cap: int) -> int:
    """The smallest size on the ladder of ``slots`` that holds ``n`` rows, at most ``cap``."""
    return min(min(m for m in pool_sizes(slots) if m >= n), cap)


def obeys_rules(digits: torch.Tensor) -> torch.Tensor:
    """``(R, 81)`` digits -> ``(R,)`` bool: every row, column and box holds 1..9 exactly once."""
    if digits.numel() == 0:
        return torch.zeros(digits.shape[0], dtype=torch.bool, device=digits.device)
    ok = (digits >= 1) & (digits <= 9)
    onehot = torch.nn.functional.one_hot((digits.long() - 1).clamp(0, 8), 9).float() * ok.unsqueeze(-1)
    counts = torch.einsum("uc,rcd->rud", _units(digits.device), onehot)
    return (counts == 1).flatten(1).all(1)


@dataclass
class RowBook:
    """Bookkeeping of the rows in the pool's slots, one entry per slot (idle slots have id -1)."""

    ids: torch.Tensor  # (P,) row of ``quiz`` in the slot
    age: torch.Tensor  # (P,) steps run
    total: torch.Tensor  # (P,) energy summed over the steps run
    prev_e: torch.Tensor  # (P,) energy of the step before the last
    last_e: torch.Tensor  # (P,) energy of the last step
    same: torch.Tensor  # (P,) checks in a row whose digits did not change
    seen: torch.Tensor  # (P, 81) digits at the last check

    @classmethod
    def fresh(cls, rows: torch.Tensor) -> RowBook:
        z = torch.zeros(rows.numel(), device=rows.device)
        seen = torch.zeros(rows.numel(), 81, dtype=torch.long, device=rows.device)
        return cls(rows, z.long(), z, z, z, z, seen)

    def put(self, at: torch.Tensor, other: RowBook):
        for f in fields(self):
            getattr(self, f.name)[at] = getattr(other, f.name)

    def keep(self, mask: torch.Tensor) -> RowBook:
        return RowBook(*(getattr(self, f.name)[mask] for f in fields(self)))


@dataclass
class Readout:
    """What a look at the pool found, one entry per slot (only the looked-at slots are filled)."""

    digits: torch.Tensor  # (P, 81)
    confidence: torch.Tensor  # (P,)
    valid: torch.Tensor  # (P,) bool


class CandidatePool:
    """Rows of ``quiz`` ``(R, 81)`` through a pool of ``chunk`` slots (see the module's docstring).

    :meth:`refill` starts waiting rows, each from its own random start; :meth:`advance` runs
    Kuramoto steps on every slot; :meth:`read` decodes some slots; :meth:`retire` writes finished
    rows into :attr:`out`, hands their slots to waiting rows and shrinks the pool on its ladder.
    :meth:`run` is the loop.
    """

    def __init__(
        self,
        model: SudokuAKOrN,
        quiz: torch.Tensor,
        *,
        steps: int,
        generator: torch.Generator | None = None,
        noise=None,
        tol: float = 0.0,
        energy_reduce: str = "sum",
        chunk: int | None = None,
        stable: int = 0,
        check_every: int = 8,
        boards: torch.Tensor | None = None,
        stop_when_valid: bool = False,
    ):
        if (noise is None) == (generator is None):
            raise ValueError("give either a generator or a noise function for the starts")
        if check_every < 1 or stable < 0:
            raise ValueError("check_every must be positive and stable non-negative")
        if stop_when_valid and boards is None:
            raise ValueError("stop_when_valid needs the board of every row")
        self.model, self.layer = model, model.kuramoto
        self.quiz = quiz.long()
        self.steps, self.generator, self.noise, self.tol = steps, generator, noise, tol
        self.energy_reduce, self.stable, self.check_every = energy_reduce, stable, check_every
        self.boards, self.stop_when_valid = boards, stop_when_valid
        dev, R = quiz.device, quiz.shape[0]
        self.slots = R if chunk is None else chunk
        self.out = Trajectories(
            self.quiz.clone(),
            torch.full((R,), float("-inf"), device=dev),
            torch.full((R,), float("inf"), device=dev),
            torch.zeros(R, dtype=torch.long, device=dev),
            torch.zeros(R, dtype=torch.bool, device=dev),
        )
        self.solved = torch.zeros(int(boards.max()) + 1 if stop_when_valid and R else 0, dtype=torch.bool, device=dev)
        self.checking = stable > 0 or stop_when_valid
        # Without exits every row of the pool entered together and leaves at T, so its T steps run
        # back to back, with no per-step look at the rows (each look waits for the device).
        self.steps_between_looks = steps if tol <= 0 and not self.checking else 1
        self.next_row = 0
        self.settled = None
        self.states, self.book = self.start(self.waiting(self.slots))

    # -- entering ------------------------------------------------------------------------------
    def waiting(self, limit: int) -> torch.Tensor:
        """The next rows to start, at most ``limit``, passing over the rows of solved boards."""
        dev, R = self.quiz.device, self.quiz.shape[0]
        got, n = [], 0
        while n < limit and self.next_row < R:
            new = torch.arange(self.next_row, min(R, self.next_row + limit - n), device=dev)
            self.next_row += new.numel()
            if self.stop_when_valid:
                new = new[~self.solved[self.boards[new]]]
            got.append(new)
            n += new.numel()
        return torch.cat(got) if got else torch.empty(0, dtype=torch.long, device=dev)

    def start(self, rows: torch.Tensor) -> tuple[OscillatorState, RowBook]:
        """Oscillators and bookkeeping for new rows: a fresh random start each, drawn in one call."""
        if self.noise is None:
            state = self.model.start(self.quiz[rows], self.generator)
        else:
            state = self.model.start(self.quiz[rows], noise=self.noise(rows).to(self.quiz.device))
        return state, RowBook.fresh(rows)

    # -- running -------------------------------------------------------------------------------
    def advance(self, n: int):
        """``n`` Kuramoto steps on every slot, with the energy bookkeeping."""
        book = self.book
        for _ in range(n):
            moved, e = self.layer.advance(self.states)
            e = e.float()
            book.prev_e = torch.where(book.age == 0, e, book.last_e)
            book.last_e, book.total = e, book.total + e
            book.age = book.age + 1
            if self.tol > 0:
                self.settled = (moved.data - self.states.data).abs().flatten(1).amax(1) < self.tol
            self.states = moved

    def read(self, slots: torch.Tensor, into: Readout):
        """Decode ``slots`` into ``into``. The batch read is padded with other slots to a size on
        the ladder, for the same reason the pool shrinks on it."""
        ids = self.book.ids
        n = slots.numel()
        pad = _ladder_size(self.slots, n, ids.numel()) - n
        rows_read = slots
        if pad:
            others = torch.ones(ids.numel(), dtype=torch.bool, device=ids.device)
            others[slots] = False
            rows_read = torch.cat([slots, others.nonzero().squeeze(1)[:pad]])
        logits = self.model.read(self.states[rows_read])[:n]
        q = self.quiz[ids[slots]]
        into.digits[slots] = torch.where(q > 0, q, logits.argmax(-1) + 1)
        into.confidence[slots] = _confidence(logits, q)
        into.valid[slots] = obeys_rules(into.digits[slots])

    def finished(self) -> tuple[torch.Tensor, Readout]:
        """The slots whose rows leave now (T reached, settled, stable, or their board solved), and
        the readout of every slot that was looked at."""
        book = self.book
        live = book.ids >= 0
        retire = (book.age >= self.steps) & live
        if self.settled is not None:
            retire |= self.settled & live
        at_check = (book.age % self.check_every == 0) & live if self.checking else torch.zeros_like(retire)
        seen = Readout(
            book.seen.clone(), torch.zeros(book.ids.numel(), device=book.ids.device), torch.zeros_like(retire)
        )
        looked = retire | at_check
        if looked.any():
            self.read(looked.nonzero().squeeze(1), seen)
        if self.stable > 0:
            unchanged = (seen.digits == book.seen).all(1)
            book.same = torch.where(at_check, torch.where(unchanged, book.same + 1, 0), book.same)
            book.seen = torch.where(at_check.unsqueeze(1), seen.digits, book.seen)
            retire |= at_check & (book.same * self.check_every >= self.stable)
        if self.stop_when_valid:
            self.solved[self.boards[book.ids[looked & seen.valid]]] = True
            retire |= self.solved[self.boards[book.ids.clamp_min(0)]] & live
            late = retire & ~looked
            if late.any():
                self.read(late.nonzero().squeeze(1), seen)
        return retire, seen

    def retire(self, slots: torch.Tensor, seen: Readout):
        """Write the rows in ``slots`` into :attr:`out`, then refill or shrink."""
        book, out = self.book, self.out
        rid = book.ids[slots]
        out.digits[rid], out.confidence[rid] = seen.digits[slots], seen.confidence[slots]
        out.valid[rid], out.ran[rid] = seen.valid[slots], book.age[slots]
        prev_e, last_e = book.prev_e[slots], book.last_e[slots]
        # A row that exits early stands for the whole run: the mean of its last two energies is
        # added once for every step it skipped (the trained models alternate between two states).
        last, score = last_e, book.total[slots] + 0.5 * (prev_e + last_e) * (self.steps - book.age[slots]).float()
        if self.layer.energy_mode == "states":
            last = self.layer.voting_energy(self.states[slots]).float()
            score = score + last
        out.score[rid] = score if self.energy_reduce == "sum" else last
        self.refill(slots)

    def refill(self, freed: torch.Tensor):
        """Waiting rows take the freed slots in place. Slots left over when none wait go idle, and
        the pool shrinks to the ladder's smallest size that holds its live rows."""
        new = self.waiting(freed.numel())
        if new.numel():
            at = freed[: new.numel()]
            new_states, new_book = self.start(new)
            self.states.put(at, new_states)
            self.book.put(at, new_book)
        if new.numel() == freed.numel():
            return
        self.book.ids[freed[new.numel() :]] = -1
        live = self.book.ids >= 0
        n_live = int(live.sum())
        size = _ladder_size(self.slots, n_live, live.numel()) if n_live else 0
        if size < live.numel():
            keep = live.clone()
            keep[(~live).nonzero().squeeze(1)[: size - n_live]] = True
            self.book = self.book.keep(keep)
            self.states = self.states[keep]

    def run(self) -> Trajectories:
        while self.book.ids.numel():
            self.advance(self.steps_between_looks if self.steps > 0 else 0)
            retire, seen = self.finished()
            if retire.any():
                self.retire(retire.nonzero().squeeze(1), seen)
        return self.out


@torch.no_grad()
def run_akorn(model: SudokuAKOrN, quiz: torch.Tensor, *, steps: int, **options) -> Trajectories:
    """Every row of ``quiz`` ``(R, 81)`` from its own random start, through a :class:`CandidatePool`
    of ``chunk`` slots (default: all rows at once); rows enter in order, and each draws its start
    when it enters.

    Energies follow the model's bookkeeping (reference: ``E(x_0) .. E(x_{T-1})`` plus a 0);
    ``energy_reduce`` = ``sum`` over steps or ``last``. A row that exits early stands for the
    whole run: for ``sum`` the mean of its last two energies is added once for every step it
    skipped, so the candidates of one board stay comparable whatever step each of them stopped at.

    ``boards`` ``(R,)``: each row's board, for ``stop_when_valid`` (see the module's docstring). A row
    that never started keeps its clues as digits, confidence -inf, score +inf and 0 steps.

    Starts: ``noise(rows) -> (len(rows), 81, C)``, the initial noise of those rows (see
    :func:`start_noise`), or else draws from ``generator`` in the order rows enter. The other
    options (``tol``, ``stable``, ``check_every``, ``chunk``) are :class:`CandidatePool`'s.
    """
    return CandidatePool(model, quiz, steps=steps, **options).run()


@torch.no_grad()
def predict(
    model,
    quiz: torch.Tensor,
    *,
    steps: int | None = None,
    candidates: int = 1,
    select: str = "energy",
    energy_reduce: str = "sum",
    chunk: int = 100,
    tol: float = 0.0,
    seed: int = 0,
    precision: str = "fp32",
    stable: int = 0,
    check_every: int = 8,
    board_index: torch.Tensor | None = None,
) -> Prediction:
    """Solve ``quiz`` ``(n, 81)``: K random starts per board, keep one per board.

    ``select``: ``energy`` (lowest energy score, the paper's voting), ``confidence`` (the most
    confident readout), or ``valid`` (a candidate whose grid obeys every rule, the most confident
    of those; the most confident of all when none does; the board stops at the first such grid).

    The K starts of a board depend only on ``(seed, its index, k)`` (:func:`start_noise`); the
    index is ``board_index`` (the board's place in its file) or its place in ``quiz``. So a board's
    result does not change with ``chunk``, with the other boards evaluated, or with ``select``.
    """
    _check_options(select, energy_reduce, candidates, chunk, check_every, stable, tol)
    device = next(model.parameters()).device
    quiz = quiz.to(device).long()
    T = model.steps if steps is None else steps
    is_akorn = isinstance(model, SudokuAKOrN)
    K = candidates if is_akorn else 1
    if not is_akorn and select == "energy" and candidates > 1:
        select = "confidence"
    n = quiz.shape[0]
    rows = quiz.repeat_interleave(K, 0)  # (n K, 81), board-major: rows b*K .. b*K+K-1 belong to board b
    index = torch.arange(n) if board_index is None else torch.as_tensor(board_index).long().cpu()
    if index.shape != (n,):
        raise ValueError(f"board_index must have one entry per board ({n}), got shape {tuple(index.shape)}")
    autocast = torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()
    with autocast:
        if not is_akorn:
            tr = _run_baseline(model, rows, T, chunk)
        else:
            channels = model.channels

            def noise(r: torch.Tensor) -> torch.Tensor:
                r = r.cpu()
                return start_noise(seed, index[r // K], r % K, channels)

            tr = run_akorn(
                model,
                rows,
                steps=T,
                noise=noise,
                tol=tol,
                energy_reduce=energy_reduce,
                chunk=chunk,
                stable=stable,
                check_every=check_every,
                boards=torch.arange(n, device=device).repeat_interleave(K),
                stop_when_valid=select == "valid",
            )
    return choose(tr, n, K, select)


def _check_options(select, energy_reduce, candidates, chunk, check_every, stable, tol):
    if select not in SELECTS:
        raise ValueError(f"select must be one of {SELECTS}, got {select!r}")
    if energy_reduce not in ("sum", "last"):
        raise ValueError(f"energy_reduce must be 'sum' or 'last', got {energy_reduce!r}")
    if candidates < 1 or chunk < 1 or check_every < 1:
        raise ValueError("candidates, chunk and check_every must be positive")
    if stable < 0:
        raise ValueError(f"stable must be non-negative, got {stable}")
    if not tol >= 0 or tol == float("inf"):
        raise ValueError(f"tol must be a finite non-negative number, got {tol}")


def _run_baseline(model, rows: torch.Tensor, steps: int, chunk: int) -> Trajectories:
    """A baseline's single deterministic pass over ``rows`` ``(R, 81)``, in blocks of ``chunk``."""
    parts = []
    for start in range(0, rows.shape[0], chunk):
        q = rows[start : start + chunk]
        logits = model(q, steps=steps)  # (r, 81, 9)
        parts.append((torch.where(q > 0, q, logits.argmax(-1) + 1), _confidence(logits, q)))
    digits = torch.cat([p[0] for p in parts])
    R = rows.shape[0]
    return Trajectories(
        digits,
        torch.cat([p[1] for p in parts]),
        torch.zeros(R, device=rows.device),
        torch.full((R,), steps, device=rows.device),
        obeys_rules(digits),
    )


def choose(tr: Trajectories, n: int, K: int, select: str) -> Prediction:
    """One of the K rows of each of the n boards of ``tr``, by ``select``."""
    scores, confs, valid = tr.score.view(n, K), tr.confidence.float().view(n, K), tr.valid.view(n, K)
    if select == "energy":
        pick = scores.argmin(1)
    elif select == "confidence":
        pick = confs.argmax(1)
    else:
        pick = torch.where(valid, confs + 2, confs).argmax(1)  # confidences lie in [0, 1]
    at = torch.arange(n, device=scores.device)
    return Prediction(
        tr.digits.view(n, K, 81)[at, pick].cpu(),
        confs[at, pick].cpu(),
        float(tr.ran.float().mean()),
        valid[at, pick].cpu(),
        pick.cpu(),
        scores[at, pick].cpu(),
        tr.ran.float().view(n, K).mean(1).cpu(),
    )


def start_noise(seed: int, boards: torch.Tensor, ks: torch.Tensor, channels: int) -> torch.Tensor:
    """The initial noise ``(len(boards), 81, channels)`` of start ``ks[i]`` of board ``boards[i]``: each
    from its own generator, seeded by ``(seed, board, k)`` alone, drawn on the CPU (the same numbers
    on every device)."""
    out = torch.empty(len(boards), 81, channels)
    for i, (b, k) in enumerate(zip(boards.tolist(), ks.tolist())):
        key = np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(b), int(k)]).generate_state(2, np.uint32)
        generator = torch.Generator().manual_seed(int(key[0]) << 31 | int(key[1]) >> 1)
        out[i] = torch.randn(81, channels, generator=generator)
    return out


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
    return {
        "board_acc": float(boards.float().mean()),
        "cell_acc": cells,
        "boards": int(len(pred)),
        "by_givens": by_givens,
    }
