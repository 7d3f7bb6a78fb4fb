"""A trained Sudoku AKOrN solving one board: decoded digits and oscillator colours per step, and its energy."""

from __future__ import annotations

import numpy as np
import torch


@torch.no_grad()
def trace_board(model, quiz: torch.Tensor, steps: int, seed: int = 0):
    """States ``(T+1, 81, C)``, decoded digits ``(T+1, 81)`` and voting energies ``(T,)`` (E of each state
    before its update) of a Sudoku model with ``start``, ``decode`` and a ``kuramoto`` layer."""
    start = model.start(quiz.view(1, 81).long(), torch.Generator().manual_seed(seed))
    states, energies = [start.x[0]], []
    for state, e in model.kuramoto.iterate(start, steps):
        states.append(state.x[0])
        energies.append(float(e[0]))
    states = torch.stack(states)
    return states, model.decode(states).argmax(-1) + 1, np.array(energies)


def render_frames(
    colours: np.ndarray,
    digits: torch.Tensor,
    quiz: torch.Tensor,
    solution: torch.Tensor | None,
    energies: np.ndarray,
    cell: int = 28,
) -> np.ndarray:
    """One frame per step: the 9x9 grid (cell colour = oscillator state, digit = decoded) beside the energy curve."""
    from PIL import Image, ImageDraw

    T1 = colours.shape[0]
    side = 9 * cell
    width = side + 220
    frames = []
    e = energies if len(energies) else np.zeros(1)
    lo, hi = float(e.min()), float(e.max())
    for t in range(T1):
        im = Image.new("RGB", (width, side), (20, 20, 20))
        d = ImageDraw.Draw(im)
        for i in range(81):
            r, cc = divmod(i, 9)
            col = tuple(int(v * 200 + 30) for v in colours[t, i])
            d.rectangle([cc * cell, r * cell, cc * cell + cell - 1, r * cell + cell - 1], fill=col)
            digit = int(quiz[i]) or int(digits[t, i])
            colour = (255, 255, 255)
            if quiz[i] == 0 and solution is not None:
                colour = (120, 255, 120) if int(digits[t, i]) == int(solution[i]) else (255, 90, 90)
            d.text(
                (cc * cell + cell // 3, r * cell + cell // 5), str(digit), fill=colour if quiz[i] == 0 else (0, 0, 0)
            )
        for k in range(1, 3):
            d.line([(k * 3 * cell, 0), (k * 3 * cell, side)], fill=(0, 0, 0), width=2)
            d.line([(0, k * 3 * cell), (side, k * 3 * cell)], fill=(0, 0, 0), width=2)
        # energy curve so far
        x0, y0, w, h = side + 15, 20, 190, side - 50
        d.rectangle([x0, y0, x0 + w, y0 + h], outline=(120, 120, 120))
        d.text((x0, y0 + h + 8), f"energy, step {t}/{T1 - 1}", fill=(220, 220, 220))
        pts = [
            (x0 + w * k / max(1, len(e) - 1), y0 + h - h * (e[k] - lo) / max(hi - lo, 1e-9))
            for k in range(min(t, len(e)))
        ]
        if len(pts) > 1:
            d.line(pts, fill=(255, 200, 60), width=2)
        frames.append(np.asarray(im, dtype=np.float32) / 255.0)
    return np.stack(frames)
