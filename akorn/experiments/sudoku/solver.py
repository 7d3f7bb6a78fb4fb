"""Exact Sudoku solving, solution counting and puzzle generation.

A bitmask depth-first search that always branches on the blank with the fewest
candidates. Grids are sequences of 81 ints, row-major, 0 for blank.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

FULL = 0x3FE  # bits 1..9
BOX = [3 * (r // 3) + c // 3 for r in range(9) for c in range(9)]
POPCOUNT = [bin(m).count("1") for m in range(1024)]
DIGITS = [[d for d in range(1, 10) if m >> d & 1] for m in range(1024)]


def conflicts(grid: Sequence[int]) -> list[str]:
    """Rule violations among the filled cells: ``["digit 5 twice in row 1", ...]`` (1-based)."""
    out = []
    for kind, key in (("row", lambda i: i // 9), ("column", lambda i: i % 9), ("box", lambda i: BOX[i])):
        seen: dict[tuple[int, int], int] = {}
        for i, d in enumerate(grid):
            if d:
                k = (key(i), d)
                if k in seen:
                    msg = f"digit {d} twice in {kind} {key(i) + 1}"
                    if msg not in out:
                        out.append(msg)
                seen[k] = i
    return out


def is_valid_solution(solution: Sequence[int], quiz: Sequence[int] | None = None) -> bool:
    """A complete grid obeying every rule (and agreeing with the clues of ``quiz``)."""
    if len(solution) != 81 or any(not 1 <= d <= 9 for d in solution) or conflicts(solution):
        return False
    return quiz is None or all(q == 0 or q == s for q, s in zip(quiz, solution))


def _search(cells: list[int], rows, cols, boxes, limit: int, found: list, rng: random.Random | None):
    best, best_mask, best_n = -1, 0, 10
    for i in range(81):
        if cells[i] == 0:
            m = FULL & ~(rows[i // 9] | cols[i % 9] | boxes[BOX[i]])
            n = POPCOUNT[m]
            if n < best_n:
                best, best_mask, best_n = i, m, n
                if n <= 1:
                    break
    if best < 0:
        found.append(list(cells))
        return len(found) >= limit
    if best_n == 0:
        return False
    r, c, b = best // 9, best % 9, BOX[best]
    digits = DIGITS[best_mask]
    if rng is not None:
        digits = digits[:]
        rng.shuffle(digits)
    for d in digits:
        bit = 1 << d
        cells[best] = d
        rows[r] |= bit
        cols[c] |= bit
        boxes[b] |= bit
        stop = _search(cells, rows, cols, boxes, limit, found, rng)
        rows[r] ^= bit
        cols[c] ^= bit
        boxes[b] ^= bit
        cells[best] = 0
        if stop:
            return True
    return False


def solve(grid: Sequence[int], limit: int = 1, rng: random.Random | None = None) -> list[list[int]]:
    """Up to ``limit`` solutions of ``grid`` (an empty list if none or if the clues conflict)."""
    if len(grid) != 81:
        raise ValueError(f"a grid has 81 cells, got {len(grid)}")
    rows, cols, boxes = [0] * 9, [0] * 9, [0] * 9
    cells = list(grid)
    for i, d in enumerate(cells):
        if d:
            bit = 1 << d
            if (rows[i // 9] | cols[i % 9] | boxes[BOX[i]]) & bit:
                return []
            rows[i // 9] |= bit
            cols[i % 9] |= bit
            boxes[BOX[i]] |= bit
    found: list[list[int]] = []
    _search(cells, rows, cols, boxes, limit, found, rng)
    return found


def count_solutions(grid: Sequence[int], limit: int = 2) -> int:
    return len(solve(grid, limit=limit))


STYLES = ("unique", "singles", "satnet")
# Rounds of naked singles (singles_rounds) that the 9,000 SATNet training boards need,
# counted on shared/data/sudoku/satnet-train.csv.xz: style "satnet" draws its cap from this.
SATNET_ROUNDS = {3: 883, 4: 4572, 5: 2722, 6: 672, 7: 122, 8: 22, 9: 3, 10: 3, 11: 1}


def singles_rounds(grid: Sequence[int]) -> int | None:
    """Rounds of naked singles that fill ``grid``, or None if they get stuck.

    Each round fills, at once, every blank whose row, column and box leave one digit.
    A grid these rounds complete has exactly one solution, reached by forced moves only:
    the difficulty of the SATNet boards, which all finish within 11 rounds, mostly 4-5.
    """
    cells = list(grid)
    rounds = 0
    while True:
        rows, cols, boxes = [0] * 9, [0] * 9, [0] * 9
        for i, d in enumerate(cells):
            if d:
                bit = 1 << d
                rows[i // 9] |= bit
                cols[i % 9] |= bit
                boxes[BOX[i]] |= bit
        forced = []
        for i in range(81):
            if cells[i] == 0:
                m = FULL & ~(rows[i // 9] | cols[i % 9] | boxes[BOX[i]])
                n = POPCOUNT[m]
                if n == 0:
                    return None
                if n == 1:
                    forced.append((i, DIGITS[m][0]))
        if not forced:
            return rounds if all(cells) else None
        for i, d in forced:
            cells[i] = d
        rounds += 1


def random_solution(rng: random.Random) -> list[int]:
    return solve([0] * 81, limit=1, rng=rng)[0]


def generate(
    givens: int, rng: random.Random, max_restarts: int = 200, style: str = "unique"
) -> tuple[list[int], list[int]]:
    """A puzzle with exactly ``givens`` clues and a unique solution, and that solution.

    Removes clues in random order from a random full grid while the puzzle stays
    acceptable; restarts when it gets stuck above ``givens``. Low clue counts (below ~22)
    are rare for this method and take many restarts. What is acceptable is ``style``:

    - ``"unique"``: any puzzle with one solution. At 31-42 givens a fifth of these need
      more than naked singles and many of the rest need 8-18 rounds of them: harder than SATNet.
    - ``"singles"``: naked singles solve it (:func:`singles_rounds`), in any number of rounds.
    - ``"satnet"``: naked singles solve it in at most R rounds, R drawn per puzzle from
      the SATNet training boards' histogram (``SATNET_ROUNDS``), so the boards are as easy
      as SATNet's, which all yield to naked singles and mostly within 4-5 rounds. Few
      givens and a tight cap may not go together; every 5 failed restarts raise R by one,
      which ties fewer givens to more rounds, as in SATNet.
    """
    if not 17 <= givens <= 80:
        raise ValueError(f"givens must be in 17..80 (no unique puzzle has fewer than 17), got {givens}")
    if style not in STYLES:
        raise ValueError(f"style must be one of {STYLES}, got {style!r}")
    cap = 81
    if style == "satnet":
        cap = rng.choices(list(SATNET_ROUNDS), weights=list(SATNET_ROUNDS.values()))[0]

    def acceptable(quiz):
        if style == "unique":
            return count_solutions(quiz, 2) == 1
        rounds = singles_rounds(quiz)
        return rounds is not None and rounds <= cap

    for restart in range(max_restarts):
        if style == "satnet" and restart and restart % 5 == 0:
            cap += 1
        solution = random_solution(rng)
        quiz = solution[:]
        order = list(range(81))
        rng.shuffle(order)
        filled = 81
        for i in order:
            if filled == givens:
                break
            d, quiz[i] = quiz[i], 0
            if not acceptable(quiz):
                quiz[i] = d
            else:
                filled -= 1
        if filled == givens:
            return quiz, solution
    raise RuntimeError(f"could not reach {givens} givens with a unique solution in {max_restarts} restarts")
