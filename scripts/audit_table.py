"""One markdown table from several `akorn classify audit` reports: a row per setting, a column per model.

python scripts/audit_table.py "AKOrN=runs/a/audit/report.json" "ResNet-18=runs/r/audit/report.json"
"""

from __future__ import annotations

import json
import sys


def cell(entry: dict | None) -> str:
    if entry is None:
        return "–"
    return f"{100 * entry['accuracy']:.1f} ± {100 * entry['se']:.1f} (n={entry['n']})"


def main(specs: list[str]) -> int:
    if not specs:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    reports = {}
    for spec in specs:
        name, _, paths = spec.partition("=")
        reports[name] = {"settings": {}}
        for path in paths.split("+"):
            try:
                report = json.loads(open(path, encoding="utf-8").read())
            except (OSError, ValueError) as e:
                print(f"audit_table: cannot read {path}: {e}", file=sys.stderr)
                return 2
            for setting, entry in report["settings"].items():
                reports[name]["settings"].setdefault(setting, entry)
    rows = list(dict.fromkeys(s for r in reports.values() for s in r["settings"]))
    print("| setting | " + " | ".join(reports) + " |")
    print("|---|" + "---|" * len(reports))
    for s in rows:
        print(f"| {s} | " + " | ".join(cell(r["settings"].get(s)) for r in reports.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
