"""The package's layers: core <- engine <- experiments <- cli, backbones and viz beside them; no private reaching."""

import ast
import subprocess
import sys

from tests.conftest import ROOT

PKG = ROOT / "akorn"
# what each part of the package may import from akorn
ALLOWED = {
    "core": ("akorn.core",),
    "engine": ("akorn.core", "akorn.engine", "akorn.errors", "akorn"),
    "backbones": ("akorn.core", "akorn.backbones", "akorn.errors"),
    "experiments": (
        "akorn.core",
        "akorn.engine",
        "akorn.backbones",
        "akorn.experiments",
        "akorn.errors",
        "akorn.extras",
        "akorn",
    ),
    "viz": ("akorn.core", "akorn.engine", "akorn.viz", "akorn.errors", "akorn.extras"),
    "cli": ("akorn",),
}


def _akorn_imports(path):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "akorn":
            yield node.module, [a.name for a in node.names]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] == "akorn":
                    yield a.name, []


def _allowed(module: str, names: list[str], prefixes) -> bool:
    targets = [module] if module != "akorn" else [f"akorn.{n}" if n != "__version__" else "akorn" for n in names]
    return all(any(t == p or t.startswith(p + ".") for p in prefixes) for t in targets)


def test_no_module_imports_a_layer_above_it():
    bad = []
    for part, prefixes in ALLOWED.items():
        for path in (PKG / part).rglob("*.py"):
            for module, names in _akorn_imports(path):
                if not _allowed(module, names, prefixes):
                    bad.append(f"{path.relative_to(ROOT)} imports {module} {names}")
    assert not bad, "\n".join(bad)


def _private_uses(tree):
    """``obj._name`` where ``obj`` is not self, cls or ctx (dunders aside)."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
            and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls", "ctx"))
        ):
            yield node


def _defined(tree) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    names.update(s.id for s in ast.walk(tree) if isinstance(s, ast.Name))
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for stmt in node.body:
                if isinstance(stmt, ast.Assign):
                    names.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
                if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                    continue
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("_"):
            names.add(node.value)  # __slots__ entries
    return names


def test_no_module_reaches_into_another_modules_private_names():
    bad = []
    for path in PKG.rglob("*.py"):
        tree = ast.parse(path.read_text())
        own = _defined(tree)
        for node in _private_uses(tree):
            if node.attr not in own:
                bad.append(f"{path.relative_to(ROOT)}:{node.lineno}: .{node.attr}")
    assert not bad, "\n".join(bad)


def test_version_and_help_do_not_import_torch():
    """``akorn --version`` and ``akorn --help`` answer without loading torch (well under a second)."""
    code = (
        "import sys, contextlib, io\n"
        "from akorn.cli.main import main\n"
        "for argv in (['--version'], ['--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit:\n"
        "            pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr


def test_no_function_is_longer_than_a_screen_and_a_half():
    """Any function over 80 lines in akorn/ (argparse builders are split per subcommand)."""
    long = []
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} is {lines} lines")
    assert not long, "\n".join(long)


def test_commands_share_only_the_common_module():
    """An akorn.cli module imports no other akorn.cli module than akorn.cli.common (main routes to them)."""
    bad = []
    for path in (PKG / "cli").glob("*.py"):
        if path.name in ("main.py", "__init__.py", "__main__.py"):
            continue
        for module, names in _akorn_imports(path):
            targets = [module] if module != "akorn.cli" else [f"akorn.cli.{n}" for n in names]
            others = [t for t in targets if t.startswith("akorn.cli") and t != "akorn.cli.common"]
            bad += [f"{path.name} imports {t}" for t in others]
    assert not bad, "\n".join(bad)
