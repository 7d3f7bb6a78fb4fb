"""Run one benchmark configuration in a fresh Python process, so peak memory is its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def child_env(args) -> dict | None:
    """Environment for the child processes, from the options of :func:`add_malloc_option`.

    glibc keeps freed heap blocks resident and raises its mmap threshold as large blocks are
    freed, so a process's peak resident memory can be far above its peak of live tensors.
    ``MALLOC_MMAP_THRESHOLD_`` fixes the threshold: every block above it is mapped on
    allocation and returned to the system when freed, so peak RSS tracks live memory.
    """
    env = {}
    if args.malloc_mmap_threshold is not None:
        env["MALLOC_MMAP_THRESHOLD_"] = str(args.malloc_mmap_threshold)
    return dict(os.environ, **env) if env else None


def add_malloc_option(parser):
    parser.add_argument(
        "--malloc-mmap-threshold",
        type=int,
        metavar="BYTES",
        help="run each configuration with MALLOC_MMAP_THRESHOLD_=BYTES (glibc), e.g. 1048576",
    )


def run_isolated(script: str, args: list[str], env: dict | None = None) -> tuple[dict | None, str]:
    """Run ``script args``; returns its last stdout line parsed as JSON, or None and the error's last line."""
    r = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, cwd=ROOT, env=env)
    if r.returncode:
        return None, (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
    return json.loads(r.stdout.strip().splitlines()[-1]), ""


def run_all(
    script: str, configs: list[tuple[str, list[str]]], authors_repo: str | None, show, env: dict | None = None
) -> list[dict]:
    """Run every ``(label, args)`` in its own process; ``show(label, result)`` prints a row."""
    rows = []
    for label, args in configs:
        if authors_repo:
            args = args + ["--authors-repo", authors_repo]
        res, err = run_isolated(script, args, env)
        if res is None:
            print(f"{label:24s} failed: {err}")
            continue
        rows.append(res)
        show(label, res)
    return rows


def print_speedups(rows: list[dict], key: str, label=lambda r: r["impl"]):
    """Each row's speed relative to the authors' row, if one was measured."""
    ref = next((r[key] for r in rows if r["impl"] == "authors"), None)
    if ref:
        for r in rows:
            print(f"  {label(r)}: {ref / r[key]:.1f}x the authors' speed")
