"""Augmentation parity of object discovery: one trained model's SimCLR loss on views drawn by the
authors' torchvision pipeline (``source/data/augs.py: simclr_augmentation``) and by akorn's
``simclr_views``, in both of its styles, on the same images. Views that are drawn alike give the
same loss within its standard error; a milder pipeline gives a lower one.

    python scripts/parity/views.py --authors PATH --model RUN_OR_STORED --images TRAIN.npz \
        [--images-used 512 --batch 128 --repeats 2 --seed 0 --threads 1 --out views.json]

``--images`` is an ``.npz`` with their ``images`` (N, 3, H, W) in [0, 1], as ``objects.py``
writes; the colour-only and crop-only rows split the difference between the two parts of a view.
Needs torchvision (the parity environment of ``setup_env.sh``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ParityError, check_checkout, main_guard, mean_std, write_json  # noqa: E402

NEEDED = ("source/data/augs.py", "train_obj.py")


def their_views(authors: Path, size: int):
    """Functions of a float batch that apply their transforms image by image, as their loader does."""
    import numpy as np
    import torch
    from PIL import Image
    from torchvision import transforms as T

    sys.path.insert(0, str(authors))
    from source.data.augs import get_color_distortion, simclr_augmentation  # their module, run as is

    def per_image(tf):
        def one(im):
            out = tf(Image.fromarray((255 * im.permute(1, 2, 0).numpy()).astype(np.uint8)))
            return out if isinstance(out, torch.Tensor) else T.ToTensor()(out)

        return lambda x: torch.stack([one(im) for im in x])

    return {
        "view": per_image(simclr_augmentation(size)),
        "colour only": per_image(get_color_distortion(s=0.5)),
        "crop only": per_image(T.RandomResizedCrop(size)),
    }


def our_views(g, style: str, crop_scale_min: float):
    from akorn.experiments.objects import augment as A

    scale = (crop_scale_min, 1.0)
    crop = A.pixel_resized_crop if style == "torchvision" else A.random_resized_crop
    jitter = A.colour_jitter_random_order if style == "torchvision" else A.colour_jitter
    return {
        "view": lambda x: A.simclr_views(x, g, style, crop_scale_min),
        "colour only": lambda x: A.random_grayscale(jitter(x, g), g),
        "crop only": lambda x: crop(x, g, scale=scale),
    }


def losses(model, images, views, batch: int, repeats: int, g) -> dict:
    import torch

    from akorn.experiments.objects.experiment import nt_xent

    out = {}
    for name, f in views.items():
        vals = []
        with torch.no_grad():
            for _ in range(repeats):
                for s in range(0, len(images), batch):
                    x = images[s : s + batch]
                    z1, z2 = model(torch.cat([f(x), f(x)]), g).chunk(2)
                    vals.append(float(nt_xent(z1, z2, 0.1)))
        out[name] = mean_std(vals)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--authors", required=True)
    p.add_argument("--model", required=True, help="a run folder or a stored model of akorn objects")
    p.add_argument("--images", required=True)
    p.add_argument("--images-used", type=int, default=512)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="")
    a = p.parse_args()
    authors = check_checkout(a.authors, NEEDED)
    for name in ("images_used", "batch", "repeats", "threads"):
        if getattr(a, name) < 1:
            raise ParityError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(a, name)}")
    if not Path(a.images).is_file():
        raise ParityError(f"--images {a.images}: no such file")
    import numpy as np
    import torch

    from akorn.experiments.model_files import load_model

    torch.set_num_threads(a.threads)
    with np.load(a.images) as d:
        if "images" not in d:
            raise ParityError(f"--images {a.images}: no 'images' array (write it with scripts/parity/objects.py)")
        images = torch.tensor(d["images"][: a.images_used], dtype=torch.float32)
    model = load_model(a.model, "objects").model
    torch.manual_seed(a.seed)  # their transforms draw from torch's global generator
    g = torch.Generator().manual_seed(a.seed)
    rows = {"authors' torchvision pipeline": their_views(authors, images.shape[-1])}
    rows["akorn views=torchvision"] = our_views(g, "torchvision", 0.08)
    rows["akorn views=yiq crop_scale_min=0.2"] = our_views(g, "yiq", 0.2)
    result = {k: losses(model, images, v, a.batch, a.repeats, g) for k, v in rows.items()}
    print(f"SimCLR loss (temperature 0.1, batch {a.batch}) of {a.model} on {len(images)} images, mean ± s.e.:")
    print("| views | " + " | ".join(result[next(iter(result))]) + " |")
    print("|---|---|---|---|")
    for k, parts in result.items():
        cells = [f"{v['mean']:.3f} ± {v['std'] / v['n'] ** 0.5:.3f}" for v in parts.values()]
        print(f"| {k} | " + " | ".join(cells) + " |")
    if a.out:
        write_json(Path(a.out), {"model": a.model, "images": len(images), "batch": a.batch, "losses": result})


if __name__ == "__main__":
    main_guard(main)
