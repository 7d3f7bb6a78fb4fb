"""The README's usage snippet runs, and its shape comments are true."""

import re

from tests.conftest import ROOT


def test_readme_snippet_runs_and_shapes_match():
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## Use the layer\s+```python\n(.*?)```", text, re.S).group(1)
    ns: dict = {}
    exec(compile(block, "README.md", "exec"), ns)
    assert tuple(ns["out"].shape) == (2, 64, 8, 8)
    assert tuple(ns["res"].trajectory.shape) == (2, 9, 64, 8, 8)
    assert tuple(ns["res"].energy.shape) == (2, 9)
    assert tuple(ns["feats"].shape) == (2, 32, 8, 8)
    assert tuple(ns["tokens"].shape) == (2, 64, 64)
    # every comment of the form "# (d, d, ...)" after an assignment matches the value
    for line in block.splitlines():
        m = re.match(r"\s*(\w+)(?:\.(\w+))?\.shape\s+# (\([\d, ]+\))", line)
        if m:
            obj = ns[m.group(1)] if not m.group(2) else getattr(ns[m.group(1)], m.group(2))
            assert tuple(obj.shape) == eval(m.group(3)), line
