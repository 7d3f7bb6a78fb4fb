"""Sudoku: readers, solver and generator, inference selection, early exit, the solve command."""

import dataclasses
import gzip
import json
import lzma
import random

import pytest
import torch

from akorn.engine.config import resolve
from akorn.errors import UserError
from akorn.experiments.sudoku import data as sdata
from akorn.experiments.sudoku import solver
from akorn.experiments.sudoku.experiment import PRESETS, SudokuConfig
from akorn.experiments.sudoku.inference import accuracy, predict, run_akorn
from akorn.experiments.sudoku.models import SudokuAKOrN, SudokuIterated
from tests.conftest import run_cli

QUIZ = "200080300060070084030500209000105408000000000402706000301007040720040060004010003"
SOL = "245981376169273584837564219976125438513498627482736951391657842728349165654812793"


def test_solver_solves_and_counts():
    q = sdata.parse_grid(QUIZ)
    sols = solver.solve(q, limit=2)
    assert len(sols) == 1 and "".join(map(str, sols[0])) == SOL
    assert solver.count_solutions([0] * 81, 2) == 2
    bad = q[:]
    bad[1] = 2  # two 2s in row 1
    assert solver.solve(bad) == [] and "digit 2 twice in row 1" in solver.conflicts(bad)


@pytest.mark.parametrize("givens", [36, 26])
def test_generator_gives_unique_puzzles_with_exact_givens(givens):
    rng = random.Random(3)
    for _ in range(3):
        q, s = solver.generate(givens, rng)
        assert sum(1 for d in q if d) == givens
        assert solver.is_valid_solution(s, q) and solver.count_solutions(q, 2) == 1


def test_singles_rounds_counts_parallel_forced_moves():
    solution = [int(c) for c in SOL]
    assert solver.singles_rounds(solution) == 0
    one_blank = solution[:]
    one_blank[40] = 0
    assert solver.singles_rounds(one_blank) == 1
    row_blank = solution[:]
    row_blank[:9] = [0] * 9  # each blank sees eight digits in its column: one round
    assert solver.singles_rounds(row_blank) == 1

    def slow(grid):
        g, n = list(grid), 0
        while not all(g):
            new = {}
            for i in range(81):
                if not g[i]:
                    seen = {
                        g[j]
                        for j in range(81)
                        if g[j] and (j // 9 == i // 9 or j % 9 == i % 9 or solver.BOX[j] == solver.BOX[i])
                    }
                    left = set(range(1, 10)) - seen
                    if len(left) == 1:
                        new[i] = left.pop()
            if not new:
                return None
            g = [new.get(i, d) for i, d in enumerate(g)]
            n += 1
        return n

    rng = random.Random(2)
    for grid in [[int(c) for c in QUIZ]] + [solver.generate(g, rng)[0] for g in (24, 30, 36, 40)]:
        assert solver.singles_rounds(grid) == slow(grid)


@pytest.mark.parametrize("style", ["singles", "satnet"])
def test_easy_styles_are_solved_by_naked_singles(style):
    rng = random.Random(5)
    rounds = []
    for givens in (31, 36, 42):
        q, s = solver.generate(givens, rng, style=style)
        assert sum(1 for d in q if d) == givens
        assert solver.is_valid_solution(s, q) and solver.count_solutions(q, 2) == 1
        rounds.append(solver.singles_rounds(q))
    assert all(r is not None for r in rounds)
    if style == "satnet":
        assert max(rounds) <= max(solver.SATNET_ROUNDS) + 200 // 5
    with pytest.raises(ValueError, match="style"):
        solver.generate(36, rng, style="hard")


def test_satnet_style_matches_satnet_difficulty():
    # SATNet boards need 4.3 rounds of naked singles on average; "unique" boards need search.
    ds = sdata.generate_set(60, (31, 42), seed=1, style="satnet")
    rounds = [solver.singles_rounds(q) for q in ds.quiz.tolist()]
    assert None not in rounds and 3.5 <= sum(rounds) / len(rounds) <= 5.5
    hard = sdata.generate_set(60, (31, 42), seed=1, style="unique")
    assert sum(solver.singles_rounds(q) is None for q in hard.quiz.tolist()) >= 3
    assert sdata.load("generate:5:31-42:1:satnet").quiz.tolist() == ds.quiz[:5].tolist()
    with pytest.raises(UserError, match="style"):
        sdata.load("generate:5:31-42:1:hardest")


def test_csv_readers_plain_xz_gz_header(tmp_path):
    body = f"{QUIZ},{SOL}\n{QUIZ.replace('0', '.')},{SOL}\n"
    (tmp_path / "a.csv").write_text("quizzes,solutions\n" + body)
    with lzma.open(tmp_path / "a.csv.xz", "wt") as f:
        f.write(body)
    with gzip.open(tmp_path / "a.csv.gz", "wt") as f:
        f.write(body)
    for name in ("a.csv", "a.csv.xz", "a.csv.gz"):
        ds = sdata.read_csv(tmp_path / name)
        assert len(ds) == 2 and ds.quiz.shape == (2, 81) and torch.equal(ds.quiz[0], ds.quiz[1])
        assert int(ds.givens()[0]) == sum(c != "0" for c in QUIZ)


@pytest.mark.parametrize(
    "row, match",
    [
        (f"{QUIZ[:-1]},{SOL}", "81 cells"),
        (f"{QUIZ[:-1]}x,{SOL}", "unexpected characters 'x'"),
        (f"{QUIZ}", "expected 'quiz,solution'"),
        (f"{QUIZ},{SOL[:-1]}4", "not a valid grid"),
    ],
)
def test_malformed_rows_name_file_and_line(tmp_path, row, match):
    f = tmp_path / "bad.csv"
    f.write_text(f"{QUIZ},{SOL}\n{row}\n")
    with pytest.raises(UserError, match=rf"bad.csv:2: .*{match}"):
        sdata.read_csv(f)


def test_satnet_original_format_and_split(tmp_path):
    grids = torch.tensor([sdata.parse_grid(QUIZ)] * 3)
    sols = torch.tensor([sdata.parse_grid(SOL)] * 3)

    def onehot(g):
        out = torch.zeros(g.shape[0], 81, 9)
        m = g > 0
        out[m, g[m] - 1] = 1
        return out.view(-1, 9, 9, 9)

    torch.save(onehot(grids), tmp_path / "features.pt")
    torch.save(onehot(sols), tmp_path / "labels.pt")
    full = sdata.read_satnet(tmp_path)
    assert torch.equal(full.quiz, grids.to(torch.uint8)) and torch.equal(full.solution, sols.to(torch.uint8))
    assert len(sdata.load(str(tmp_path), "train")) == 3 and len(sdata.load(str(tmp_path), "test")) == 0


def test_plain_puzzle_lists_report_bad_lines_and_keep_good_ones():
    lines = [QUIZ, QUIZ.replace("0", "."), "12", "11" + QUIZ[2:], "# comment", QUIZ[:-1] + "?"]
    grids, errors = sdata.read_puzzles(lines, "in")
    assert [g is not None for g in grids] == [True, True, False, False, False]
    assert "in:3: a puzzle has 81 cells" in errors[2]
    assert "contradictory clues" in errors[3] and "row 1" in errors[3]
    assert "unexpected characters '?'" in errors[4]


def test_accuracy_by_givens():
    sol = torch.tensor([sdata.parse_grid(SOL)] * 2)
    quiz = torch.tensor([sdata.parse_grid(QUIZ)] * 2)
    quiz[1, 0] = 0
    pred = sol.clone()
    pred[1, 0] = 1  # wrong digit in a blank cell of board 2
    acc = accuracy(pred, sol, quiz)
    g = sum(c != "0" for c in QUIZ)
    assert acc["board_acc"] == 0.5 and set(acc["by_givens"]) == {g - 1, g}
    assert acc["by_givens"][g]["board_acc"] == 1.0 and acc["by_givens"][g - 1]["board_acc"] == 0.0
    blanks = int((quiz == 0).sum())
    assert abs(acc["cell_acc"] - (blanks - 1) / blanks) < 1e-9


def test_energy_voting_picks_the_lowest_energy_candidate():
    torch.manual_seed(0)
    model = SudokuAKOrN(channels=16, heads=2, steps=3).eval()
    quiz = torch.tensor([sdata.parse_grid(QUIZ), sdata.parse_grid(QUIZ.replace("2", "0"))])
    K = 5
    out = predict(model, quiz, candidates=K, select="energy", seed=11, chunk=1000)
    gen = torch.Generator().manual_seed(11)
    tr = run_akorn(model, quiz.repeat_interleave(K, 0), steps=3, generator=gen)
    pick = tr.score.view(2, K).argmin(1)
    for b in range(2):
        assert torch.equal(out.digits[b], tr.digits[b * K + pick[b]])
    conf = predict(model, quiz, candidates=K, select="confidence", seed=11, chunk=3)
    assert conf.digits.shape == (2, 81)
    # chunking changes nothing: same rows, same random stream
    assert torch.equal(predict(model, quiz, candidates=K, seed=11, chunk=3).digits, out.digits)


def test_early_exit_stops_when_states_settle():
    torch.manual_seed(0)
    model = SudokuAKOrN(channels=16, heads=2, steps=3).eval()
    quiz = torch.tensor([sdata.parse_grid(QUIZ)])
    assert predict(model, quiz, steps=50, tol=10.0).steps_run == 1
    assert predict(model, quiz, steps=50, tol=0.0).steps_run == 50


def _settling_model():
    """No natural frequencies and a small step: states settle geometrically, each row at its own step."""
    torch.manual_seed(0)
    model = SudokuAKOrN(channels=16, heads=2, steps=3).eval()
    with torch.no_grad():
        model.kuramoto.omega_param.zero_()
        model.kuramoto.gamma.fill_(0.1)
    return model


def test_early_exit_retires_each_row_on_its_own():
    model = _settling_model()
    quiz = torch.tensor([sdata.parse_grid(QUIZ)]).repeat(6, 1)
    T, tol = 300, 3e-3
    tr = run_akorn(model, quiz, steps=T, generator=torch.Generator().manual_seed(1), tol=tol)
    assert len(set(tr.ran.tolist())) > 1 and int(tr.ran.max()) < T  # rows stop at different steps
    # Retiring rows from the batch changes nothing for the others: each row alone stops at the
    # same step with the same result.
    gen = torch.Generator().manual_seed(1)
    for i in range(6):
        one = run_akorn(model, quiz[i : i + 1], steps=T, generator=gen, tol=tol)
        assert int(one.ran) == int(tr.ran[i])
        assert torch.equal(one.digits[0], tr.digits[i])
        torch.testing.assert_close(one.confidence[0], tr.confidence[i], rtol=1e-4, atol=1e-4)
        torch.testing.assert_close(one.score[0], tr.score[i], rtol=1e-5, atol=0.0)
    # A retired row stands for the full run: same digits, and its energy sum counts the skipped
    # steps at its last energies, so it matches the T-step sum (without that it would be ~ran/T of it).
    full = run_akorn(model, quiz, steps=T, generator=torch.Generator().manual_seed(1))
    assert bool((full.ran == T).all())
    assert torch.equal(tr.digits, full.digits)
    torch.testing.assert_close(tr.score, full.score, rtol=1e-3, atol=0.0)
    last = run_akorn(
        model, quiz, steps=T, generator=torch.Generator().manual_seed(1), tol=tol, energy_reduce="last"
    ).score
    full_last = run_akorn(model, quiz, steps=T, generator=torch.Generator().manual_seed(1), energy_reduce="last").score
    torch.testing.assert_close(last, full_last, rtol=1e-3, atol=0.0)
    # predict draws start k of board b from (seed, b, k) alone: the same rows through run_akorn
    from akorn.experiments.sudoku.inference import start_noise

    seeded = run_akorn(model, quiz, steps=T, tol=tol, noise=lambda r: start_noise(1, r * 0, r, model.channels))
    mean_steps = predict(model, quiz[:1], steps=T, candidates=6, tol=tol, seed=1).steps_run
    assert mean_steps == pytest.approx(seeded.ran.float().mean().item())


def test_pool_refills_freed_slots_and_reproduces_the_plain_run():
    """A pool smaller than the rows gives every row the same trajectory as one big batch when no
    exit is on, and with exits on, freed slots go to waiting rows (fewer steps in all)."""
    torch.manual_seed(0)
    model = SudokuAKOrN(channels=16, heads=2, steps=3).eval()
    quiz = torch.tensor([sdata.parse_grid(QUIZ), sdata.parse_grid(QUIZ.replace("2", "0"))]).repeat_interleave(4, 0)
    big = run_akorn(model, quiz, steps=8, generator=torch.Generator().manual_seed(3), chunk=8)
    pooled = run_akorn(model, quiz, steps=8, generator=torch.Generator().manual_seed(3), chunk=4)
    assert torch.equal(big.digits, pooled.digits) and bool((pooled.ran == 8).all())
    torch.testing.assert_close(big.score, pooled.score)
    model = _settling_model()
    ex = run_akorn(model, quiz, steps=300, generator=torch.Generator().manual_seed(1), tol=3e-3, chunk=3)
    assert int(ex.ran.max()) < 300 and bool((ex.ran > 0).all())


def test_stable_digits_exit_checks_on_the_row_s_own_schedule():
    """``stable``: a row stops at a check once its digits have not changed for ``stable`` steps.
    The settling model's digits stop changing long before its states settle."""
    model = _settling_model()
    quiz = torch.tensor([sdata.parse_grid(QUIZ)]).repeat(5, 1)
    T = 200
    full = run_akorn(model, quiz, steps=T, generator=torch.Generator().manual_seed(2))
    ex = run_akorn(model, quiz, steps=T, generator=torch.Generator().manual_seed(2), stable=8, check_every=4)
    assert bool((ex.ran % 4 == 0).all()) and bool((ex.ran >= 12).all()) and int(ex.ran.max()) < T
    assert torch.equal(ex.digits, full.digits)
    # a row's exit step does not depend on the pool it ran in
    alone = run_akorn(model, quiz[:1], steps=T, generator=torch.Generator().manual_seed(2), stable=8, check_every=4)
    assert int(alone.ran) == int(ex.ran[0])
    # the pool's in-place refills hold in bf16 too (state in float32, projections in bf16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf = run_akorn(model, quiz, steps=T, generator=torch.Generator().manual_seed(2), stable=16, chunk=2)
    assert bool((bf.ran < T).all()) and bool((bf.ran % 8 == 0).all())  # the default check_every
    with pytest.raises(ValueError, match="stable"):
        predict(model, quiz, stable=-1)
    with pytest.raises(ValueError, match="tol must be"):
        predict(model, quiz, tol=float("nan"))


def test_a_shrinking_pool_steps_and_reads_only_sizes_on_its_ladder():
    """Once nothing waits, exits free slots one or a few at a time; the pool and its readouts
    keep to the ladder's sizes (idle slots run on unread), and every row ends as it would alone."""
    from akorn.experiments.sudoku.inference import pool_sizes

    ladder = pool_sizes(100)
    assert ladder[0] == 100 and ladder[-1] == 1 and list(ladder) == sorted(set(ladder), reverse=True)
    assert all(b >= 0.75 * a for a, b in zip(ladder, ladder[1:]) if b >= 4)
    assert pool_sizes(1) == (1,) and pool_sizes(5) == (5, 4, 3, 2, 1)

    model = _settling_model()
    quiz = torch.tensor([sdata.parse_grid(QUIZ), sdata.parse_grid(QUIZ.replace("2", "0"))]).repeat(7, 1)
    stepped, read = [], []
    step, readout = model.kuramoto.advance, model.read
    model.kuramoto.advance = lambda state: (stepped.append(len(state)), step(state))[1]
    model.read = lambda state: (read.append(len(state)), readout(state))[1]
    T = 200
    ex = run_akorn(model, quiz, steps=T, generator=torch.Generator().manual_seed(2), stable=8, check_every=4, chunk=14)
    assert len(set(ex.ran.tolist())) >= 3 and int(ex.ran.max()) < T  # rows left at different steps
    assert set(stepped) <= set(pool_sizes(14)) and set(read) <= set(pool_sizes(14))
    assert len(set(stepped)) > 2  # the pool did shrink
    for i in range(0, 14, 5):
        gen = torch.Generator().manual_seed(2)
        # row i draws its start after the i rows before it: replay those draws, then run it alone
        run_akorn(model, quiz[:i], steps=0, generator=gen) if i else None
        alone = run_akorn(model, quiz[i : i + 1], steps=T, generator=gen, stable=8, check_every=4)
        assert int(alone.ran) == int(ex.ran[i]) and torch.equal(alone.digits[0], ex.digits[i])


def test_valid_selection_prefers_a_grid_that_obeys_the_rules_and_stops_the_board():
    from akorn.experiments.sudoku.inference import obeys_rules

    sol = torch.tensor([sdata.parse_grid(SOL)])
    assert obeys_rules(sol).tolist() == [True]
    broken = sol.clone()
    broken[0, 0], broken[0, 1] = broken[0, 1].item(), broken[0, 0].item()  # still 1..9 in the row
    assert obeys_rules(torch.cat([broken, torch.zeros_like(sol)])).tolist() == [False, False]
    # One blank, and a head biased to read the right digit there: every row's grid is valid at
    # its first check, so the board stops after check_every steps and its waiting rows never start.
    torch.manual_seed(0)
    model = SudokuAKOrN(channels=16, heads=2, steps=3).eval()
    with torch.no_grad():
        model.head[-1].bias[sol[0, 5] - 1] = 1e4
    quiz = sol.clone()
    quiz[0, 5] = 0
    out = predict(model, quiz, steps=40, candidates=64, select="valid", chunk=16, check_every=4)
    assert bool(out.valid[0]) and torch.equal(out.digits[0], sol[0])
    assert out.steps_run == 16 * 4 / 64
    conf = predict(model, quiz, steps=40, candidates=64, select="confidence", chunk=16)
    assert conf.steps_run == 40 and bool(conf.valid[0])
    # Without a valid grid it falls back to the most confident candidate.
    with torch.no_grad():
        model.head[-1].bias[sol[0, 5] - 1] = -1e4
    fallback = predict(model, quiz, steps=8, candidates=4, select="valid", seed=5)
    same = predict(model, quiz, steps=8, candidates=4, select="confidence", seed=5)
    assert not bool(fallback.valid[0]) and torch.equal(fallback.digits, same.digits)


def test_baselines_forward_and_shapes():
    quiz = torch.tensor([sdata.parse_grid(QUIZ)])
    assert SudokuIterated(32, heads=4, blocks=2, steps=2)(quiz).shape == (1, 81, 9)
    with pytest.raises(ValueError, match=r"\(B, 81\)"):
        SudokuAKOrN(16, heads=2)(torch.zeros(1, 80, dtype=torch.long))


def test_solve_command_reports_bad_puzzles_and_wrong_answers(tmp_path, puzzle_csv):
    r = run_cli(
        "sudoku",
        "train",
        "preset=tiny",
        "threads=1",
        "max_steps=2",
        f"data={puzzle_csv}",
        f"eval_data={puzzle_csv}",
        f"out_dir={tmp_path}",
        "name=m",
    )
    assert r.returncode == 0, r.stderr
    r = run_cli(
        "sudoku",
        "solve",
        "--model",
        tmp_path / "m",
        "--candidates",
        "2",
        "--select",
        "energy",
        QUIZ,
        "123",
        "11" + QUIZ[2:],
    )
    out = r.stdout
    assert "puzzle 2: not solved: argument:2: a puzzle has 81 cells" in out
    assert "puzzle 3: not solved" in out and "contradictory clues" in out
    # an untrained network gets puzzle 1 wrong: it must say so and exit non-zero
    assert "puzzle 1: NOT solved: the network's answer breaks the rules" in out
    assert r.returncode == 1


def test_generate_command(tmp_path):
    r = run_cli("sudoku", "generate", "5", "--givens", "34-36", "--out", tmp_path / "g.csv")
    assert r.returncode == 0 and "puzzles/s" in r.stdout
    ds = sdata.read_csv(tmp_path / "g.csv")
    assert len(ds) == 5 and ((ds.givens() >= 34) & (ds.givens() <= 36)).all()
    r = run_cli("sudoku", "generate", "5", "--givens", "10-12", "--out", tmp_path / "x.csv")
    assert r.returncode == 2 and "17 <= LO" in r.stderr


def test_stratified_subset():
    q = torch.tensor([sdata.parse_grid(QUIZ)] * 5)
    q[3:, 0] = 0  # two boards with one given fewer
    ds = sdata.SudokuSet(q.to(torch.uint8), torch.tensor([sdata.parse_grid(SOL)] * 5, dtype=torch.uint8))
    sub = sdata.stratified(ds, 1)
    assert len(sub) == 2 and sorted(sub.givens().tolist()) == sorted(set(ds.givens().tolist()))


def test_eval_and_solve_reject_bad_k_t_chunk_and_exit_options(tmp_path, puzzle_csv):
    r = run_cli("sudoku", "eval", tmp_path, "--data", puzzle_csv, "--candidates", "0")
    assert r.returncode == 2 and "--candidates must be a positive integer" in r.stderr
    r = run_cli("sudoku", "solve", "--steps", "-3", QUIZ)
    assert r.returncode == 2 and "--steps must be a positive integer" in r.stderr
    r = run_cli("sudoku", "solve", "--check-every", "0", QUIZ)
    assert r.returncode == 2 and "--check-every must be a positive integer" in r.stderr
    r = run_cli("sudoku", "eval", tmp_path, "--data", puzzle_csv, "--stable", "-4")
    assert r.returncode == 2 and "--stable must be 0 (off)" in r.stderr
    r = run_cli("sudoku", "solve", "--tol", "nan", QUIZ)
    assert r.returncode == 2 and "--tol must be 0 (off)" in r.stderr
    r = run_cli("sudoku", "extension", "pretrained", "--data", puzzle_csv, "--steps", "16,x")
    assert r.returncode == 2 and "comma-separated positive integers" in r.stderr
    r = run_cli("sudoku", "extension", "pretrained", "--data", puzzle_csv, "--steps", "16", "--chunk", "0")
    assert r.returncode == 2 and "--chunk must be positive" in r.stderr


def test_eval_picks_a_checkpoint_and_a_device(tmp_path, puzzle_csv):
    r = run_cli(
        "sudoku",
        "train",
        "preset=tiny",
        "threads=1",
        "max_steps=2",
        "checkpoint_every=1",
        f"data={puzzle_csv}",
        f"out_dir={tmp_path}",
        "name=m",
    )
    assert r.returncode == 0, r.stderr
    args = ("sudoku", "eval", tmp_path / "m", "--data", puzzle_csv, "--steps", "2")
    r = run_cli(*args, "--step", "1", "--device", "cpu", "--json", tmp_path / "r.json")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "r.json").read_text())["step"] == 1
    r = run_cli(*args, "--step", "7")
    assert r.returncode == 2 and "no checkpoint at step 7" in r.stderr and "1, 2" in r.stderr
    r = run_cli(*args, "--device", "gpu0")
    assert r.returncode == 2 and "unknown device 'gpu0'" in r.stderr
    if not torch.cuda.is_available():
        r = run_cli(*args, "--device", "cuda")
        assert r.returncode == 2 and "CUDA is not available" in r.stderr
    r = run_cli("sudoku", "eval", "pretrained:no-such-model", "--data", puzzle_csv)
    assert r.returncode == 2 and "'no-such-model' is not in this installation" in r.stderr


def test_symmetry_augmentation_trains_and_moves_every_board(tmp_path, puzzle_csv):
    from akorn.experiments.sudoku.experiment import SudokuExperiment
    from tests.test_fail_safe import cli

    code, _, err = cli("sudoku", "train", "preset=tiny", "threads=1", f"data={puzzle_csv}", "augment=symmetry",
                       f"out_dir={tmp_path}", "name=aug")  # fmt: skip
    assert code == 0, err
    cfg = resolve(SudokuConfig, ["preset=tiny", "augment=symmetry"], presets=PRESETS)
    exp = SudokuExperiment()
    seen = {}

    class Spy(torch.nn.Module):
        def forward(self, quiz, noise=None):
            seen["quiz"], seen["noise"] = quiz, noise
            return torch.zeros(quiz.shape[0], 81, 9, requires_grad=True)

    ds = sdata.read_csv(puzzle_csv)
    batch = ds.batch(torch.arange(4))
    exp.loss(Spy(), batch, torch.Generator().manual_seed(3), cfg, shard=(0, 4))
    moved, noise = seen["quiz"], seen["noise"]
    plain = dataclasses.replace(cfg, augment="none")
    exp.loss(Spy(), batch, torch.Generator().manual_seed(3), plain, shard=(0, 4))
    assert torch.equal(noise, seen["noise"])  # the same noise with and without the option
    assert (moved != batch["quiz"]).any(1).all() and torch.equal((moved > 0).sum(1), (batch["quiz"] > 0).sum(1))
