"""Writing frames: animated GIF (Pillow), MP4 (imageio + ffmpeg), PNG, and the index page."""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np


def to_uint8(frames: np.ndarray) -> np.ndarray:
    return (np.clip(frames, 0, 1) * 255).round().astype(np.uint8)


def upscale(frames: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour enlargement of ``(T, H, W, 3)`` frames so small grids stay visible."""
    if factor <= 1:
        return frames
    return frames.repeat(factor, axis=1).repeat(factor, axis=2)


def write_gif(frames: np.ndarray, path: Path, fps: int = 12):
    from PIL import Image

    imgs = [Image.fromarray(f) for f in to_uint8(frames)]
    imgs[0].save(path, save_all=True, append_images=imgs[1:], duration=int(1000 / fps), loop=0, optimize=False)


def write_mp4(frames: np.ndarray, path: Path, fps: int = 12) -> bool:
    """MP4 via imageio's ffmpeg plugin; returns False (and writes nothing) when ffmpeg is unavailable."""
    try:
        import imageio.v2 as imageio
        import imageio_ffmpeg  # noqa: F401  (brings its own ffmpeg binary)
    except ImportError:
        return False
    f = to_uint8(frames)
    # H.264 wants even sizes
    h, w = f.shape[1] - f.shape[1] % 2, f.shape[2] - f.shape[2] % 2
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=8, macro_block_size=1) as wr:
        for frame in f[:, :h, :w]:
            wr.append_data(frame)
    return True


def write_png(image: np.ndarray, path: Path):
    from PIL import Image

    Image.fromarray(to_uint8(image)).save(path)


def write_index(out: Path, title: str = "akorn: oscillators over time"):
    """index.html showing every PNG, GIF and MP4 in ``out`` together."""
    items = []
    for p in sorted(out.iterdir()):
        name = html.escape(p.name)
        if p.suffix in (".png", ".gif"):
            items.append(f'<figure><img src="{name}"><figcaption>{name}</figcaption></figure>')
        elif p.suffix == ".mp4":
            items.append(
                f'<figure><video src="{name}" controls loop muted autoplay></video>'
                f"<figcaption>{name}</figcaption></figure>"
            )
    page = (
        f"<!doctype html><meta charset=utf-8><title>{html.escape(title)}</title>"
        "<style>body{font-family:sans-serif;background:#111;color:#eee}figure{display:inline-block;margin:8px}"
        "img,video{max-width:480px;image-rendering:pixelated}</style>"
        f"<h1>{html.escape(title)}</h1>" + "\n".join(items)
    )
    tmp = out / "index.html.tmp"
    tmp.write_text(page)
    os.replace(tmp, out / "index.html")
