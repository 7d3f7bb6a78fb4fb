"""One SimCLR training step of a Kuramoto adapter on MobileNetV2 (ImageNet weights), batch of two views.

* ``straightforward``: eager fp32 with the backbone's parameters left trainable, so autograd records
  and back-propagates through the whole backbone (its gradients are computed and thrown away);
* ``frozen``: the backbone frozen as ``KuramotoAdapter`` freezes it: nothing below the adapter
  records a graph;
* ``frozen-bf16``: the same under bf16 autocast;
* ``backbone-bf16``: frozen, the backbone alone in bf16 (``backbone_precision="bf16"``), the
  adapter and head in fp32;
* ``cached``: ``feature_cache=2``: the backbone's outputs for two colour-augmented copies of each
  image computed once (not timed), each step crops two views of them in feature space and runs the
  adapter and head only; ``cached-bf16`` under bf16 autocast.

``frozen`` and ``cached`` stop the backbone at the adapter's point (what follows it does not
change the adapter's features); ``straightforward`` runs the whole backbone.

Each configuration runs in a fresh process; median seconds over the repeats after a warm-up.

    python benchmarks/adapter_speed.py --batch 32 --image-size 128
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _isolated import add_malloc_option, child_env, run_all  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run_one(impl: str, batch: int, image_size: int, repeats: int, point: str, threads: int) -> dict:
    import torch

    if threads:
        torch.set_num_threads(threads)
    sys.path.insert(0, str(ROOT))
    from akorn.experiments import adapter_cache
    from akorn.experiments.adapters import AdapterNet, build_backbone, resize
    from akorn.experiments.objects.augment import simclr_views
    from akorn.experiments.objects.datasets import ObjectSet
    from akorn.experiments.objects.experiment import nt_xent

    torch.manual_seed(0)
    net = AdapterNet(build_backbone("mobilenet_v2"), [point], image_size, channels=64, n=4, steps=4, heads=4,
                     backbone_precision="bf16" if impl == "backbone-bf16" else "fp32")  # fmt: skip
    if impl == "straightforward":
        for p in net.adapter.backbone.parameters():
            p.requires_grad_(True)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, 1e-3)
    pixels = torch.randint(0, 256, (batch, image_size, image_size, 3), dtype=torch.uint8)
    imgs = resize(pixels, image_size)
    g = torch.Generator().manual_seed(0)
    adapter = net.adapter
    if impl.startswith("cached"):
        scenes = ObjectSet(pixels, torch.zeros(pixels.shape[:3], dtype=torch.uint8))
        to_input = lambda im: resize(im, image_size)  # noqa: E731
        cache = adapter_cache.build(adapter, scenes, 2, to_input, 0, torch.device("cpu"), progress=False)

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=impl.endswith("bf16")):
            if impl.startswith("cached"):
                outs = adapter_cache.views(cache.batch(torch.arange(batch)), adapter.points, g, adapter.grids, 0)
                z1, z2 = net(outs, g, cached=True).float().chunk(2)
            else:
                v = torch.cat([simclr_views(imgs, g), simclr_views(imgs, g)], 0)
                if impl == "straightforward":
                    z1, z2 = net.head(net.features(v, g, stop_early=False)).float().chunk(2)
                else:
                    z1, z2 = net(v, g).float().chunk(2)
            loss = nt_xent(z1, z2, 0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    net.train()
    step()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    return {
        "impl": impl,
        "seconds": statistics.median(times),
        "peak_rss_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6,
        "threads": torch.get_num_threads(),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--impl", default="straightforward,frozen,frozen-bf16,backbone-bf16,cached,cached-bf16")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--point", default="features.13", help="the adapter's point in MobileNetV2")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    add_malloc_option(p)
    a = p.parse_args()
    if a.one:
        print(json.dumps(run_one(a.impl, a.batch, a.image_size, a.repeats, a.point, a.threads)))
        return
    configs = [
        (i, ["--one", "--impl", i, "--batch", str(a.batch), "--image-size", str(a.image_size), "--repeats",
             str(a.repeats), "--point", a.point, "--threads", str(a.threads)])
        for i in a.impl.split(",")
    ]  # fmt: skip
    print(f"adapter training step at {a.point}, {a.batch} images x 2 views at {a.image_size} px: median of {a.repeats}")

    def show(label, r):
        print(f"{label:18s} {r['seconds']:7.2f} s  peak RSS {r['peak_rss_gb']:.2f} GB  ({r['threads']} threads)")

    rows = run_all(__file__, configs, None, show, child_env(a))
    ref = next((r["seconds"] for r in rows if r["impl"] == "straightforward"), None)
    if ref:
        for r in rows:
            print(f"  {r['impl']}: {ref / r['seconds']:.1f}x the straightforward step")


if __name__ == "__main__":
    main()
