"""Run one benchmark configuration in a fresh Python process, so peak memory is its own."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_isolated(script: str, args: list[str]) -> tuple[dict | None, str]:
    """Run ``script args``; returns its last stdout line parsed as JSON, or None and the error's last line."""
    r = subprocess.run([sys.executable, script, *args], capture_output=True, text=True, cwd=ROOT)
    if r.returncode:
        return None, (r.stderr.strip().splitlines() or [f"exit code {r.returncode}"])[-1]
    return json.loads(r.stdout.strip().splitlines()[-1]), ""
