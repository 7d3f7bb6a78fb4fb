"""Activation checkpointing over the T steps of a Kuramoto layer, with the saved states in one buffer.

The forward runs the T steps without building a graph and copies the state entering each
step into one ``(T, *x.shape)`` buffer allocated up front; the backward recomputes the steps
from that buffer, last to first, one at a time with autograd, so at most one step's
intermediates are alive. Values and gradients are those of the plain loop.

Why not ``torch.utils.checkpoint`` per step: it keeps each step's input wherever the
allocator put it, between the short-lived temporaries of the steps that follow. On a CPU
with glibc malloc that interleaving fragments the heap: at the Sudoku size (C=512, batch 100,
T=16) the resident peak reached 2.5 GB with under 1 GB of live tensors. A buffer above glibc's
32 MB mmap limit is mapped on its own, and leaves the heap to temporaries that are all freed by
the end of each step.

Shape letters: T steps, B batch, C channels.
"""

from __future__ import annotations

import torch


class _CheckpointedSteps(torch.autograd.Function):
    @staticmethod
    def forward(ctx, step_fn, steps: int, x, c, omega, gamma, *params):
        device = x.device.type
        ctx.autocast = (device, torch.is_autocast_enabled(device), torch.get_autocast_dtype(device))
        ctx.step_fn, ctx.steps = step_fn, steps
        ctx.set_materialize_grads(False)
        states = x.new_empty((steps,) + tuple(x.shape))
        energy = None
        for t in range(steps):
            states[t].copy_(x)
            x, e = step_fn(x, c, omega, gamma)
            if energy is None:  # allocated once: small blocks kept across steps fragment the heap
                energy = e.new_empty((e.shape[0], steps))
            energy[:, t] = e
        if energy is None:
            energy = x.new_zeros((x.shape[0], 0))
        ctx.save_for_backward(states, c, omega, gamma, *params)
        return x, energy, states

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_x, g_energy, g_states):
        states, c, omega, gamma, *params = ctx.saved_tensors
        needs = ctx.needs_input_grad[3:]  # c, omega, gamma, *params
        # Recompute from leaves of our own so that autograd.grad stops at the step's inputs;
        # parameters are leaves already and are used as they are.
        inputs = [c.detach(), None if omega is None else omega.detach(), gamma.detach()]
        inputs = [t.requires_grad_(need) if t is not None else None for t, need in zip(inputs, needs)]
        wrt_index = [i for i, need in enumerate(needs) if need]
        wrt_tensors = inputs + params
        grads = [None] * len(wrt_tensors)
        device, autocast_on, autocast_dtype = ctx.autocast
        for t in reversed(range(ctx.steps)):
            if g_x is None and g_energy is None:
                g_x = None if g_states is None else g_states[t]
                continue
            x_in = states[t].detach().requires_grad_(True)
            with torch.enable_grad(), torch.autocast(device, dtype=autocast_dtype, enabled=autocast_on):
                x_out, e = ctx.step_fn(x_in, *inputs)
            outputs, out_grads = [], []
            if g_x is not None:
                outputs.append(x_out)
                out_grads.append(g_x)
            if g_energy is not None:
                outputs.append(e)
                out_grads.append(g_energy[:, t])
            got = torch.autograd.grad(
                outputs, [x_in] + [wrt_tensors[i] for i in wrt_index], out_grads, allow_unused=True
            )
            g_x = got[0]
            # Accumulate in place into buffers of our own, so that no new long-lived block
            # appears between the temporaries of every step.
            for i, g in zip(wrt_index, got[1:]):
                if g is not None:
                    grads[i] = g.clone() if grads[i] is None else grads[i].add_(g)
            del got, outputs, out_grads, x_out, e, x_in
            if g_states is not None:
                g_x = g_states[t] if g_x is None else g_x + g_states[t]
        return (None, None, g_x, *grads)


def checkpointed_steps(step_fn, steps: int, x, c, omega, gamma, params):
    """Run ``steps`` calls of ``step_fn(x, c, omega, gamma) -> (x_next, energy)`` with checkpointing.

    ``params``: the tensors ``step_fn`` uses besides its arguments that may need gradients
    (the coupling's parameters). Returns the final state, the energies ``(B, steps)`` of the
    states entering each step, and those states ``(steps, *x.shape)``. Supports one backward
    pass (no double backward).
    """
    return _CheckpointedSteps.apply(step_fn, steps, x, c, omega, gamma, *params)
