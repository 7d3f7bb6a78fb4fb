"""Generation speed of the procedural data: Sudoku puzzles per givens, object images per dataset.

python benchmarks/data_speed.py
"""

from __future__ import annotations

import random
import time


def main():
    from akorn.experiments.objects import datasets
    from akorn.experiments.sudoku import solver

    print("Sudoku puzzles with a unique solution (one core):")
    for style, givens in (
        ("unique", 36),
        ("unique", 30),
        ("unique", 25),
        ("unique", 23),
        ("satnet", 36),
        ("satnet", 31),
    ):
        rng, n, t0 = random.Random(0), 0, time.perf_counter()
        while time.perf_counter() - t0 < 5 or n == 0:
            solver.generate(givens, rng, style=style)
            n += 1
        print(f"  {style:6s} {givens} givens: {n / (time.perf_counter() - t0):8.1f} puzzles/s ({n} puzzles)")
    print("object images with masks (one core):")
    for name, n in (("tetrominoes", 4000), ("dsprites", 600), ("clevr-like", 200)):
        t0 = time.perf_counter()
        datasets.generate(name, n, seed=0)
        print(f"  {name:12s} {n / (time.perf_counter() - t0):8.0f} images/s ({n} images)")


if __name__ == "__main__":
    main()
