"""The results table of docs/classify.md from the reports of ``akorn classify eval`` (several per model
when its tasks ran in separate evaluations).

    python scripts/classify_table.py "AKOrN=runs/cifar10-akorn-cpu/robustness*/report.json" \\
        "ResNet-18=runs/cifar10-resnet18-cpu/robustness/report.json"
"""

import glob
import json
import sys


def merged(pattern: str) -> dict:
    out = {"attacks": {}, "corruptions": {}}
    for path in sorted(glob.glob(pattern)):
        r = json.loads(open(path).read())
        out["attacks"].update(r.get("attacks", {}))
        out["corruptions"].update(r.get("corruptions", {}))
        # clean accuracy and calibration from the report with the most clean images
        if r.get("clean", {}).get("n", 0) > out.get("clean", {}).get("n", 0):
            out.update({k: r[k] for k in ("clean", "ece") if k in r})
        if "corruption_mean" in r:
            out["corruption_mean"] = r["corruption_mean"]
    return out


def cell(b) -> str:
    if not b:
        return "–"
    return f"{100 * b['accuracy']:.1f} ± {100 * b['se']:.1f} (n={b['n']})"


def main(specs):
    models = {name: merged(pattern) for name, pattern in (s.split("=", 1) for s in specs)}
    names = list(models)
    print("| measure | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    print("| clean accuracy | " + " | ".join(cell(m.get("clean")) for m in models.values()) + " |")
    for attack, label in (("pgd", "PGD-20, L∞ 8/255"), ("autoattack", "AutoAttack standard, L∞ 8/255"),
                          ("autoattack-rand", "AutoAttack rand (EoT 20), L∞ 8/255")):  # fmt: skip
        print(f"| {label} | " + " | ".join(cell(m["attacks"].get(attack)) for m in models.values()) + " |")
    means = [f"{100 * m['corruption_mean']:.1f}" if "corruption_mean" in m else "–" for m in models.values()]
    print("| corruptions, mean of 15 × 5 | " + " | ".join(means) + " |")
    eces = [f"{100 * m['ece']:.2f} %" if "ece" in m else "–" for m in models.values()]
    print("| ECE, 15 bins | " + " | ".join(eces) + " |")
    print()
    corr = sorted({c for m in models.values() for c in m["corruptions"]})
    if corr:
        print("| corruption (mean of 5 severities) | " + " | ".join(names) + " |")
        print("|---|" + "---|" * len(names))
        for c in corr:
            row = [f"{100 * m['corruptions'][c]['accuracy']:.1f}" if c in m["corruptions"] else "–"
                   for m in models.values()]  # fmt: skip
            print(f"| {c.replace('_', ' ')} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
