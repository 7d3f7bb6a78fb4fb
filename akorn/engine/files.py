"""Small file helpers shared by the engine and the visualisation: clear errors, no half-written state."""

from __future__ import annotations

import json
import os
from pathlib import Path

from akorn.errors import UserError


def ensure_writable_dir(path: str | Path, what: str = "output folder") -> Path:
    """Create ``path`` if needed and prove it can be written; a :class:`UserError` otherwise."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".akorn-write-test-{os.getpid()}"  # one per process: ranks check the same folder
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


def read_text_lines(path: str | Path, what: str = "file") -> list[str]:
    """The lines of a UTF-8 text file, split at ``\\n`` only (a ``\\r`` before it is dropped), so line
    numbers are those an editor shows; anything else is a one-line :class:`UserError`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise UserError(f"{what} {path} is a folder, not a file") from None
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror}") from None
    return decode_lines(data, f"{what} {path}")


def decode_lines(data: bytes, what: str) -> list[str]:
    """``data`` as UTF-8 lines (see :func:`read_text_lines`); ``what`` names it in errors."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise UserError(f"{what} is UTF-16 text; save it as UTF-8")
    if b"\x00" in data:
        raise UserError(f"{what} is a binary file, not text")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise UserError(f"{what} is not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})") from None
    return [line.removesuffix("\r") for line in text.split("\n")]


def check_output_file(path: str | Path, what: str = "output file") -> Path:
    """Before long work: ``path`` can be written (its folder is made if needed), or a :class:`UserError`."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{what} {path} is a folder")
    ensure_writable_dir(path.parent if str(path.parent) else Path("."), f"folder of the {what}")
    return path


def write_text_atomically(path: str | Path, text: str, what: str = "file"):
    """Write through a temporary file and a rename, so a reader never sees half a file."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(text)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise UserError(f"cannot write {what} {path}: {e.strerror}") from None
