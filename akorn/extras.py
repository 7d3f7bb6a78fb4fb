"""Optional dependencies: which extra of ``pip install "akorn[EXTRA]"`` brings which module.

A command declares the extras it needs; the command line checks them before any work is done, so a
core-only install answers with one line naming the extra instead of a traceback, and leaves nothing
behind. This module imports nothing heavy: ``akorn --help`` stays fast.
"""

from __future__ import annotations

import importlib.util

from akorn.errors import UserError

# extra -> the modules it provides (import names), as pyproject.toml's optional-dependencies list them
EXTRAS: dict[str, tuple[str, ...]] = {
    "viz": ("matplotlib", "PIL"),  # imageio too, for MP4s; without it only the GIFs are written
    "objects": ("sklearn", "PIL"),
    "classify": ("PIL", "matplotlib", "pyautoattack", "imagecorruptions", "torchmetrics"),
    "photos": ("PIL", "pycocotools", "imgviz"),
    "umap": ("umap",),
}

# a module that is missing -> the extra to install, for imports no command declared beforehand
MODULE_EXTRA: dict[str, str] = {
    "matplotlib": "viz",
    "sklearn": "objects",
    "PIL": "objects",
    "pyautoattack": "classify",
    "imagecorruptions": "classify",
    "torchmetrics": "classify",
    "pycocotools": "photos",
    "imgviz": "photos",
    "umap": "umap",
}


def install_hint(extra: str) -> str:
    return f'pip install "akorn[{extra}]"'


def missing_modules(extra: str) -> list[str]:
    if extra not in EXTRAS:
        raise KeyError(f"unknown extra {extra!r}")
    return [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]


def require(*extras: str, what: str = "this command") -> None:
    """Raises a one-line :class:`UserError` naming the first extra whose modules are not installed."""
    for extra in extras:
        missing = missing_modules(extra)
        if missing:
            names = ", ".join(missing)
            raise UserError(f"{what} needs the {extra} extra ({names} not installed): {install_hint(extra)}")


def explain_missing(error: ModuleNotFoundError) -> str | None:
    """The one line for a missing optional module, or None when it is not one of ours."""
    top = (error.name or "").split(".")[0]
    if top not in MODULE_EXTRA:
        return None
    return f"{top} is not installed; it comes with the {MODULE_EXTRA[top]} extra: {install_hint(MODULE_EXTRA[top])}"
