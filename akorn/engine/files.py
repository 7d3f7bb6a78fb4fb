"""Small file helpers shared by the engine and the visualisation: clear errors, no half-written state."""

from __future__ import annotations

import json
from pathlib import Path

from akorn.errors import UserError


def ensure_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path`` if needed and prove it can be written; a :class:`UserError` otherwise."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".akorn-write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as e:
        raise UserError(f"{what} {out} cannot be written: {e.strerror}") from None
    return out


def read_json(path: Path, what: str) -> dict:
    """Parse a JSON file; missing or corrupt files become a :class:`UserError` naming ``what``."""
    if not path.is_file():
        raise UserError(f"{what}: {path} not found")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise UserError(f"corrupt {path}: {e}") from None
