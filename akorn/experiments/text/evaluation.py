"""What a byte-level model is measured by: bits per byte on held-out windows, the oscillators'
energy and order parameter over the steps, and sampling (with or without a key/value cache)."""

from __future__ import annotations

import math
import time

import torch
import torch.nn.functional as F

from akorn.core.oscillators import order_parameter


def _device(model) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def bits_per_byte(model, windows, limit: int, steps: int | None = None, seed: int = 0, batch: int = 16) -> float:
    """Mean next-byte cross-entropy in bits over every position of the first ``limit`` windows."""
    device = _device(model)
    g = torch.Generator(device=device).manual_seed(seed)
    total, count = 0.0, 0
    for lo in range(0, min(limit, len(windows)), batch):
        tokens = windows.batch(range(lo, min(lo + batch, limit, len(windows))))["tokens"].to(device)
        logits = model(tokens[:, :-1], steps=steps, generator=g)
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), tokens[:, 1:].reshape(-1), reduction="sum")
        total += nll.item()
        count += tokens[:, 1:].numel()
    return total / count / math.log(2)


@torch.no_grad()
def dynamics(model, tokens: torch.Tensor, steps: int | None = None, generator=None) -> list[dict]:
    """Per layer of an AKOrN model: the voting energy (mean over the batch, per token) and the order
    parameter over the context (mean over oscillators and batch) at every state ``x_0 .. x_T``."""
    c = model.embedding(tokens)
    x = torch.randn(c.shape, generator=generator, device=c.device) if model.initial_state == "noise" else c
    out = []
    for layer, readout in zip(model.stack.layers, model.stack.readouts):
        result = layer.run(x, c, steps, return_trajectory=True, return_energy=True)
        trajectory = result.trajectory  # (B, T+1, L, C)
        order = [order_parameter(trajectory[:, t], layer.n, channel_dim=-1).mean().item()
                 for t in range(trajectory.shape[1])]  # fmt: skip
        energy = (result.energy.mean(0) / tokens.shape[1]).tolist()
        out.append({"energy_per_token": energy, "order_parameter": order})
        x = result.x
        c = readout(x)
    return out


@torch.no_grad()
def sample(model, prompt: bytes, length: int, *, temperature: float = 1.0, top_k: int = 0, seed: int = 0,
           cache: bool = True) -> tuple[bytes, float]:  # fmt: skip
    """``length`` bytes drawn after ``prompt``, and the bytes per second of drawing them.

    ``cache`` (AKOrN only): the prompt runs once and every new byte runs its T steps against the
    cached keys and values of the earlier ones; when the context is full, the latest half of it
    runs again from an empty cache (the positions start over). Without it, every byte runs the
    model over the latest ``context`` bytes."""
    device = _device(model)
    g = torch.Generator(device=device).manual_seed(seed)
    tokens = list(prompt)
    start = time.perf_counter()
    step = _cached_steps(model, tokens, g) if cache else _full_steps(model, tokens, g)
    logits = next(step)
    for _ in range(length):
        tokens.append(_draw(logits, temperature, top_k, g))
        logits = step.send(tokens[-1])
    seconds = time.perf_counter() - start
    return bytes(tokens[len(prompt) :]), length / max(seconds, 1e-9)


def _draw(logits: torch.Tensor, temperature: float, top_k: int, g) -> int:
    if temperature == 0:
        return int(logits.argmax())
    logits = logits.float() / temperature
    if top_k:
        kth = logits.topk(min(top_k, logits.numel())).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return int(torch.multinomial(logits.softmax(-1), 1, generator=g))


def _full_steps(model, tokens: list[int], g):
    device = _device(model)
    while True:
        window = torch.tensor([tokens[-model.context :]], device=device)
        yield model(window, generator=g)[0, -1]


def _cached_steps(model, tokens: list[int], g):
    device = _device(model)
    cache = model.new_cache()
    logits = model.extend(torch.tensor([tokens[-model.context :]], device=device), cache, generator=g)[0, -1]
    while True:
        new = yield logits
        if cache[0][0].length == model.context:
            cache = model.new_cache()
            latest = torch.tensor([tokens[-model.context // 2 :]], device=device)
            logits = model.extend(latest, cache, generator=g)[0, -1]
        else:
            logits = model.extend(torch.tensor([[new]], device=device), cache, generator=g)[0, -1]
