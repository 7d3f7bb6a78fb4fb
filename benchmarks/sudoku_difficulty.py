"""How hard Sudoku sets are: rounds of naked singles each board needs (akorn.experiments.sudoku.solver.singles_rounds).

Prints, per file, the share of boards that naked singles cannot finish and the histogram of
rounds for the rest.

    python benchmarks/sudoku_difficulty.py satnet-train.csv.xz heldout-satnet.csv heldout-unique.csv
"""

from __future__ import annotations

import argparse
from collections import Counter


def main():
    from akorn.experiments.sudoku import data as sdata
    from akorn.experiments.sudoku import solver

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", help="quiz,solution CSV files (.xz/.gz too)")
    a = p.parse_args()
    for f in a.files:
        quizzes = sdata.read_csv(f).quiz.tolist()
        rounds = Counter(solver.singles_rounds(q) for q in quizzes)
        stuck = rounds.pop(None, 0)
        hist = ", ".join(f"{r}: {100 * c / len(quizzes):.1f}%" for r, c in sorted(rounds.items()))
        print(
            f"{f}: {len(quizzes)} boards; naked singles get stuck on {100 * stuck / len(quizzes):.1f}%; "
            f"rounds needed: {hist}"
        )


if __name__ == "__main__":
    main()
