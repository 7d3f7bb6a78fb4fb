"""Per-item records of an evaluation: one JSON line per board or image, written as each finishes.

The first line is the header: the settings that decide every item's result. ``--resume`` reads
the file back, refuses it when the settings differ (naming them, changing nothing) and skips
the items already there; a torn last line (the process was killed mid-write) is dropped.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

from akorn.engine.files import check_output_file
from akorn.errors import UserError


def file_checksum(path: str | Path) -> str:
    """sha256 of a file, or of the sorted (name, sha256) list of a folder's files."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            h.update(f"{f.relative_to(path)}:{file_checksum(f)}\n".encode())
        return h.hexdigest()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Records:
    """A records file opened for appending, with its header checked against ``header``.

    ``resume``: keep the items already in the file (``self.done``, by their ``key``) and append;
    otherwise the file is started anew.
    """

    def __init__(self, path: str | Path, header: dict, key: str = "index", resume: bool = False):
        self.path = check_output_file(path, "records file")
        self.key = key
        self.done: dict = {}
        if resume:
            if not self.path.exists():
                raise UserError(f"--resume: no records file {self.path} to resume from")
            old_header, items = read_records(self.path)
            differ = [
                f"{k} is {old_header.get(k)!r} there, {v!r} now" for k, v in header.items() if old_header.get(k) != v
            ]
            if differ:
                raise UserError(f"--resume: {self.path} is from another evaluation: " + "; ".join(differ[:3]))
            self.done = {item[key]: item for item in items}
            self._rewrite(header, list(self.done.values()))  # without a torn last line
        else:
            self._rewrite(header, [])
        try:
            self.handle = open(self.path, "a", encoding="utf-8")
        except OSError as e:
            raise UserError(f"cannot write records file {self.path}: {e.strerror}") from None

    def _rewrite(self, header: dict, items: list[dict]):
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text("".join(json.dumps(x) + "\n" for x in [{"header": header}, *items]), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError as e:
            raise UserError(f"cannot write records file {self.path}: {e.strerror}") from None

    def write(self, item: dict):
        """Append one item and flush it to the file."""
        try:
            self.handle.write(json.dumps(item) + "\n")
            self.handle.flush()
        except OSError as e:
            raise UserError(f"cannot write records file {self.path}: {e.strerror}") from None
        self.done[item[self.key]] = item

    def close(self):
        self.handle.close()


def read_records(path: str | Path) -> tuple[dict, list[dict]]:
    """The header and the items of a records file; a torn last line is dropped with a notice."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read records file {path}: {e}") from None
    lines = [line for line in text.split("\n") if line.strip()]
    parsed = []
    for i, line in enumerate(lines):
        try:
            parsed.append(json.loads(line))
        except ValueError:
            if i == len(lines) - 1:
                print(f"akorn: dropping the torn last line of {path}", file=sys.stderr)
                continue
            raise UserError(f"corrupt records file {path}: line {i + 1} is not JSON") from None
    if not parsed or not isinstance(parsed[0], dict) or "header" not in parsed[0]:
        raise UserError(f"{path} is not a records file (its first line has no header)")
    items = [p for p in parsed[1:] if isinstance(p, dict)]
    return parsed[0]["header"], items
