"""Maths of the Kuramoto layer: invariants, equivalences and the oracle."""

import math

import pytest
import torch

from akorn import KuramotoLayer, KuramotoStack, Readout, Speed, normalize, project_tangent
from akorn.core import maths
from akorn.core.coupling import AttentionCoupling
from akorn.core.gta import rotary_angles
from akorn.core.oscillators import split_oscillators


def _norms(x, n, cdim=1):
    xs, d = split_oscillators(x, n, cdim)
    return xs.norm(dim=d)


@pytest.mark.parametrize("coupling", ["conv", "attn"])
def test_unit_norm_preserved_over_1000_steps(coupling):
    torch.manual_seed(0)
    layer = KuramotoLayer(16, n=4, coupling=coupling, grid=(4, 4), heads=2, omega="global", omega_init=1.0, steps=1000)
    x, c = torch.randn(2, 16, 4, 4), torch.randn(2, 16, 4, 4)
    with torch.no_grad():
        out = layer(x, c)
    assert torch.allclose(_norms(out, 4), torch.ones(()), atol=1e-6)


def test_update_is_tangent_when_omega_is_zero():
    torch.manual_seed(0)
    x = normalize(torch.randn(3, 12, 5, 5), 4)
    y = torch.randn(3, 12, 5, 5)
    p = project_tangent(y, x, 4)
    xs, d = split_oscillators(x, 4, 1)
    ps, _ = split_oscillators(p, 4, 1)
    assert (xs * ps).sum(d).abs().max() < 1e-6
    # and the layer's drift (before normalising) is that projection: step size tiny -> x + γ Proj y
    layer = KuramotoLayer(12, n=4, coupling="conv", omega="none", c_norm=None, gamma=1e-3, steps=1)
    with torch.no_grad():
        y_full = layer.coupling(x) + y
        x1 = layer.advance(layer.start(x, y))[0].x
    expected = normalize(x + 1e-3 * project_tangent(y_full, x, 4), 4)
    assert torch.allclose(x1, expected, atol=1e-6)


@pytest.mark.parametrize("kind, n", [("global", 4), ("per_pair", 2)])
def test_omega_only_step_is_an_exact_rotation(kind, n):
    """An Ω-only step rotates every pair by atan(γω); exact when all pairs of an oscillator share ω.

    (With per-pair ω and N > 2 the discrete step rescales pairs unequally before normalising,
    so it is not a rotation; that case is covered by the oracle test instead.)
    """
    torch.manual_seed(0)
    layer = KuramotoLayer(8, n=n, coupling="conv", omega=kind, omega_init=0.7, c_norm=None, gamma=0.3, steps=1)
    if kind == "per_pair":
        with torch.no_grad():
            layer.omega_param.mul_(torch.rand(4, 1) + 0.5)
    with torch.no_grad():
        layer.coupling.conv.weight.zero_()
        layer.coupling.conv.bias.zero_()
    x = normalize(torch.randn(2, 8, 3, 3), n)
    with torch.no_grad():
        out = layer(x, torch.zeros_like(x))
    assert torch.allclose(_norms(out, n), torch.ones(()), atol=1e-6)
    # angles between oscillators with the same index at different units are kept
    units_in = split_oscillators(x, n, 1)[0].flatten(3)  # (B, C/N, N, U)
    units_out = split_oscillators(out, n, 1)[0].flatten(3)
    g_in = torch.einsum("bknu,bknv->bkuv", units_in, units_in)
    g_out = torch.einsum("bknu,bknv->bkuv", units_out, units_out)
    assert torch.allclose(g_in, g_out, atol=1e-6)
    # every pair turns by atan(γω): (a, b) -> (cos a + sin b, -sin a + cos b)
    w = layer.omega()
    w = w.expand(4) if w.ndim == 0 else w
    theta = torch.atan(layer.gamma * w)
    a, b = x.unflatten(1, (4, 2)).unbind(2)
    a1, b1 = out.unflatten(1, (4, 2)).unbind(2)
    cs, sn = theta.cos().view(1, 4, 1, 1), theta.sin().view(1, 4, 1, 1)
    assert torch.allclose(a1, cs * a + sn * b, atol=1e-6)
    assert torch.allclose(b1, -sn * a + cs * b, atol=1e-6)


def _symmetric_conv_layer(channels, k, gamma):
    layer = KuramotoLayer(channels, n=4, coupling="conv", kernel_size=k, omega="none", c_norm=None, gamma=gamma)
    conv = layer.coupling.conv
    with torch.no_grad():
        w = torch.randn_like(conv.weight) * 0.3
        # J_ij = J_ji^T: W[o, i, dy, dx] = W[i, o, -dy, -dx]
        w = 0.5 * (w + w.transpose(0, 1).flip(-1, -2))
        conv.weight.copy_(w)
        conv.bias.zero_()
    return layer


def test_lyapunov_energy_never_increases_for_symmetric_coupling():
    """``layer.lyapunov_energy`` (with its ½) is the plain formula of ``akorn.core.maths`` and does
    not rise along the steps of a symmetric coupling with a bias and Ω = 0."""
    torch.manual_seed(1)
    layer = _symmetric_conv_layer(16, 3, gamma=0.02)
    with torch.no_grad():
        layer.coupling.conv.bias.normal_(0, 0.3)  # a bias is part of the linear term's constant
    x = torch.randn(2, 16, 6, 6)
    c = torch.randn(2, 16, 6, 6) * 0.5
    with torch.no_grad():
        energies = [layer.lyapunov_energy(layer.start(x, c))]
        layer.run(x, c, steps=200, on_step=lambda t, state, e: energies.append(layer.lyapunov_energy(state)))
        energies = torch.stack(energies, 1)
        state = layer.start(x, c)
        units = state.x.flatten(2).transpose(1, 2)
        cu = c.flatten(2).transpose(1, 2)
        bias = layer.coupling.conv.bias
        Wx = maths.coupling(layer, units, (6, 6)) - bias
        plain = maths.lyapunov_energy(units, Wx, bias + cu)
        torch.testing.assert_close(layer.lyapunov_energy(state), plain)
        voting = maths.voting_energy(units, Wx + bias + cu)
        torch.testing.assert_close(layer.voting_energy(state), voting)
        assert not torch.allclose(plain, voting)  # the ½ makes them differ
    diffs = energies[:, 1:] - energies[:, :-1]
    assert (diffs <= 1e-4).all(), diffs.max()
    assert (energies[:, -1] < energies[:, 0] - 1.0).all()  # it really moves downhill


def test_run_watches_and_stops_the_loop():
    """``on_step`` sees every step with the energy of the state it left; ``stop`` ends the run there."""
    torch.manual_seed(0)
    layer = KuramotoLayer(8, n=4, coupling="conv", steps=10, energy_mode="states")
    x, c = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    seen = []
    with torch.no_grad():
        full = layer(x, c, return_trajectory=True, return_energy=True)
        r = layer.run(
            x,
            c,
            on_step=lambda t, s, e: seen.append((t, s.x, e)),
            stop=lambda t, s, e: t == 4,
            return_trajectory=True,
            return_energy=True,
        )
        for t, (state, e) in enumerate(layer.iterate(layer.start(x, c), 10), 1):
            torch.testing.assert_close(state.x, full.trajectory[:, t])
            torch.testing.assert_close(e, full.energy[:, t - 1])
    assert [t for t, _, _ in seen] == [1, 2, 3, 4]
    torch.testing.assert_close(r.x, full.trajectory[:, 4])
    assert r.trajectory.shape[1] == 5 and r.energy.shape[1] == 5
    for t, xs, e in seen:
        torch.testing.assert_close(xs, full.trajectory[:, t])
        torch.testing.assert_close(e, full.energy[:, t - 1])


def test_stimulus_is_normalised_once_whichever_way_the_layer_is_driven():
    torch.manual_seed(0)
    layer = KuramotoLayer(8, n=4, coupling="conv", c_norm="gn", steps=3)
    with torch.no_grad():
        layer.c_norm.weight.normal_()
    x, c = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4) * 5 + 3
    with torch.no_grad():
        state = layer.start(x, c)
        torch.testing.assert_close(state.stimulus, layer.normalize_stimulus(c))
        last = [s for s, _ in layer.iterate(layer.start(x, c))][-1]
        torch.testing.assert_close(last.x, layer(x, c))


@pytest.mark.parametrize("coupling", ["conv", "attn"])
def test_gradcheck_float64_through_several_steps(coupling):
    torch.manual_seed(0)
    layer = KuramotoLayer(
        8,
        n=4,
        coupling=coupling,
        grid=(3, 3),
        heads=2,
        omega="global",
        omega_init=0.4,
        c_norm="gn",
        learn_gamma=True,
        steps=3,
    ).double()
    x = torch.randn(2, 8, 3, 3, dtype=torch.float64, requires_grad=True)
    c = torch.randn(2, 8, 3, 3, dtype=torch.float64, requires_grad=True)

    def f(x, c):
        r = layer(x, c, return_energy=True)
        return r.x, r.energy

    assert torch.autograd.gradcheck(f, (x, c), eps=1e-6, atol=1e-5)
    # parameters too: omega, gamma and the coupling weights receive correct gradients
    params = [layer.omega_param, layer.gamma]

    def g(*ps):
        with torch.no_grad():
            pass
        return torch.func.functional_call(layer, {"omega_param": ps[0], "gamma": ps[1]}, (x.detach(), c.detach()))

    assert torch.autograd.gradcheck(
        g, tuple(p.detach().clone().requires_grad_(True) for p in params), eps=1e-6, atol=1e-5
    )


def test_gta_at_initialisation_is_a_2d_rotary_embedding():
    """Compare against an independent complex-number 2-D RoPE."""
    torch.manual_seed(0)
    H, W, heads, C = 5, 4, 2, 32
    layer = KuramotoLayer(C, n=4, coupling="attn", grid=(H, W), heads=heads)
    att = layer.coupling
    d = C // heads
    q = torch.randn(3, heads, H * W, d)
    from akorn.core.gta import apply_pair_blocks

    got = apply_pair_blocks(att.gta.mat_q, q)
    # 2-D RoPE: pair index p: frequency f = p // 2, coordinate = row if p even else column
    F_ = math.ceil(d / 4)
    rows = torch.arange(H).repeat_interleave(W).double()
    cols = torch.arange(W).repeat(H).double()
    pairs = torch.arange(d // 2)
    freq = 10000.0 ** (-(pairs // 2).double() / F_)
    coord = torch.where(pairs % 2 == 0, rows[:, None], cols[:, None])  # (U, P)
    angle = coord * freq
    z = torch.view_as_complex(q.double().unflatten(-1, (-1, 2)).contiguous())
    rotated = torch.view_as_real(z * torch.polar(torch.ones_like(angle), angle)).flatten(-2)
    assert torch.allclose(got.double(), rotated, atol=1e-5)
    assert torch.allclose(rotary_angles((H, W), d), angle)
    # the output blocks start as the transposes (inverse rotations)
    assert torch.allclose(att.gta.mat_o, att.gta.mat_q.transpose(-1, -2))
    assert all(getattr(att.gta, f"mat_{n}").requires_grad for n in "qkvo")


@pytest.mark.parametrize("channel_dim", [1, -1])
def test_swap_pairs_in_every_order(channel_dim):
    """One pair swap for every placement of the partners; the stacked fast version agrees with the flip."""
    from akorn.core.fast.layout import swap_pairs_stacked, to_planar
    from akorn.core.oscillators import swap_pairs

    x = torch.arange(2 * 12 * 3, dtype=torch.float64).reshape(2, 12, 3)
    if channel_dim == -1:
        x = x.transpose(1, 2).contiguous()
    channels = lambda t: (t if channel_dim == 1 else t.transpose(1, 2))[0, :, 0].tolist()  # noqa: E731
    c = channels(x)
    assert channels(swap_pairs(x, channel_dim)) == [c[i ^ 1] for i in range(12)]
    assert channels(swap_pairs(x, channel_dim, "halves")) == c[6:] + c[:6]
    n = 4
    planar = to_planar(x, n, channel_dim)
    # in planar order the swap is the interleaved swap of the oscillator-major state, reordered
    assert torch.equal(
        swap_pairs(planar, channel_dim, "planar", n), to_planar(swap_pairs(x, channel_dim), n, channel_dim)
    )
    for state, is_planar in ((x, False), (planar, True)):
        order = "planar" if is_planar else "interleaved"
        assert torch.equal(
            swap_pairs_stacked(state, n, channel_dim, is_planar), swap_pairs(state, channel_dim, order, n)
        )
    with pytest.raises(ValueError, match="order must be one of"):
        swap_pairs(x, channel_dim, "diagonal")
    with pytest.raises(ValueError, match="needs the oscillator dimension"):
        swap_pairs(x, channel_dim, "planar")


def test_halves_order_gives_the_same_pair_transform():
    """What the attention coupling computes in halves order is the interleaved-pair transform, permuted."""
    from akorn.core.fast.pairs import half_pair_coefficients, halves_order
    from akorn.core.gta import apply_pair_blocks
    from akorn.core.oscillators import swap_pairs

    torch.manual_seed(0)
    blocks = torch.randn(6, 8, 2, 2, dtype=torch.float64)  # (U, D/2, 2, 2), general, not rotations
    x = torch.randn(3, 6, 16, dtype=torch.float64)
    order = halves_order(16)
    assert order.tolist() == [0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15]
    a, b = half_pair_coefficients(blocks)
    xh = x[..., order]
    got = a * xh + b * swap_pairs(xh, -1, "halves")
    assert torch.allclose(got, apply_pair_blocks(blocks, x)[..., order], atol=1e-12)


@pytest.mark.parametrize("order", ["interleaved", "halves"])
def test_pair_transform_matches_autograd_of_the_expression(order):
    """Eager multiply-adds into pair views, with and without gradients: the same values and
    gradients (x, a, b) as autograd over ``a * x + b * swap(x)``."""
    from akorn.core.fast import pair_transform
    from akorn.core.oscillators import swap_pairs

    torch.manual_seed(0)
    x = torch.randn(2, 5, 3, 4, 8, dtype=torch.float64, requires_grad=True)
    a = torch.randn(5, 3, 1, 8, dtype=torch.float64, requires_grad=True)
    b = torch.randn(5, 3, 1, 8, dtype=torch.float64, requires_grad=True)
    g = torch.randn(2, 5, 3, 4, 8, dtype=torch.float64)
    fast = pair_transform(x, a, b, order)
    plain = torch.addcmul(x * a, swap_pairs(x, -1, order), b)
    assert torch.allclose(fast, plain, atol=1e-15)
    with torch.no_grad():
        assert torch.allclose(pair_transform(x, a, b, order), plain, atol=1e-15)
    for u, v in zip(torch.autograd.grad(fast, (x, a, b), g), torch.autograd.grad(plain, (x, a, b), g)):
        assert torch.allclose(u, v, atol=1e-12)
    assert torch.autograd.gradcheck(lambda *t: pair_transform(*t, order), (x, a, b))


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(coupling="conv", kernel_size=5, omega="global", c_norm="gn"),
        dict(coupling="conv", kernel_size=3, omega="per_pair", c_norm=None),
        dict(coupling="attn", grid=(4, 4), heads=4, omega="global", c_norm=None),
        dict(coupling="attn", grid=(4, 4), heads=2, positions="none", omega="none", c_norm="gn"),
        dict(coupling="attn", grid=(4, 4), heads=2, omega="identity", c_norm="gn", gamma=0.7),
    ],
)
def test_fast_path_matches_reference_float32(kwargs):
    torch.manual_seed(0)
    layer = KuramotoLayer(16, n=4, steps=6, **kwargs)
    with torch.no_grad():
        for p in layer.parameters():  # move away from the symmetric initial values
            p.add_(torch.randn_like(p) * 0.01)
    x, c = torch.randn(2, 16, 4, 4), torch.randn(2, 16, 4, 4)
    if layer.coupling.layout == "tokens":
        x, c = (t.flatten(2).transpose(1, 2) for t in (x, c))
    with torch.no_grad():
        r = layer(x, c, return_trajectory=True, return_energy=True)
        ref_states, ref_energy = maths.run(layer, x, c, 6)
    for t, s in enumerate(ref_states):
        assert torch.allclose(r.trajectory[:, t], s, atol=1e-5), t
    assert torch.allclose(r.energy, ref_energy, rtol=1e-5, atol=1e-3)


def test_identity_omega_equals_scaled_projection_step():
    """Reference code without Ω: normalize(x + γ(x + Proj y)) == normalize(x + γ/(1+γ) Proj y)."""
    torch.manual_seed(0)
    gamma = 1.0
    ident = KuramotoLayer(16, n=4, coupling="conv", omega="identity", gamma=gamma, c_norm=None, steps=8)
    plain = KuramotoLayer(16, n=4, coupling="conv", omega="none", gamma=gamma / (1 + gamma), c_norm=None, steps=8)
    plain.coupling.load_state_dict(ident.coupling.state_dict())
    x, c = torch.randn(2, 16, 5, 5), torch.randn(2, 16, 5, 5)
    with torch.no_grad():
        assert torch.allclose(ident(x, c), plain(x, c), atol=1e-5)


def test_reference_energy_bookkeeping():
    torch.manual_seed(0)
    kw = dict(coupling="conv", omega="global", c_norm=None, steps=5)
    a = KuramotoLayer(8, n=4, energy_mode="states", **kw)
    b = KuramotoLayer(8, n=4, energy_mode="reference", **kw)
    b.load_state_dict(a.state_dict())
    x, c = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    with torch.no_grad():
        ea = a(x, c, return_energy=True).energy
        eb = b(x, c, return_energy=True).energy
    assert ea.shape == eb.shape == (2, 6)
    assert (eb[:, 0] == 0).all()
    assert torch.allclose(eb[:, 1:], ea[:, :-1])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape_kind", ["image", "tokens", "sequence"])
def test_dtype_and_shape_sweep(dtype, shape_kind):
    torch.manual_seed(0)
    if shape_kind == "image":
        layer = KuramotoLayer(8, n=2, coupling="conv", steps=3).to(dtype)
        x = torch.randn(2, 8, 5, 6, dtype=dtype)
    elif shape_kind == "tokens":
        layer = KuramotoLayer(8, n=4, coupling="attn", grid=(2, 3), heads=2, steps=3).to(dtype)
        x = torch.randn(2, 6, 8, dtype=dtype)
    else:
        layer = KuramotoLayer(8, n=4, coupling="conv", spatial_dims=1, steps=3).to(dtype)
        x = torch.randn(2, 7, 8, dtype=dtype)
    r = layer(x, torch.randn_like(x), return_trajectory=True, return_energy=True)
    assert r.x.shape == x.shape and r.x.dtype == dtype
    assert r.trajectory.shape == (2, 4, *x.shape[1:])
    assert r.energy.shape == (2, 4)
    cdim = 1 if x.ndim == 4 else -1
    assert torch.allclose(_norms(r.x, layer.n, cdim), torch.ones((), dtype=dtype), atol=1e-5)


def test_conv_on_tokens_with_grid_matches_image():
    torch.manual_seed(0)
    layer = KuramotoLayer(8, n=4, coupling="conv", grid=(3, 4), steps=4)
    x, c = torch.randn(2, 8, 3, 4), torch.randn(2, 8, 3, 4)
    with torch.no_grad():
        img = layer(x, c)
        tok = layer(x.flatten(2).transpose(1, 2), c.flatten(2).transpose(1, 2))
    assert torch.allclose(img.flatten(2).transpose(1, 2), tok, atol=1e-6)


@pytest.mark.parametrize("coupling", ["attn", "conv"])
@pytest.mark.parametrize("energy_mode", ["states", "reference"])
def test_checkpointing_gives_identical_values_and_gradients(coupling, energy_mode):
    """checkpoint=True: the same states, trajectory, energies and gradients (x, c, every parameter)."""
    torch.manual_seed(0)
    kw = dict(
        coupling=coupling, grid=(3, 3), heads=2, steps=5, learn_gamma=True, omega="per_pair", energy_mode=energy_mode
    )
    plain = KuramotoLayer(16, n=4, **kw).double()
    ck = KuramotoLayer(16, n=4, speed=Speed(checkpoint=True), **kw).double()
    with torch.no_grad():
        plain.omega_param.add_(0.2 * torch.randn_like(plain.omega_param))
    ck.load_state_dict(plain.state_dict())
    x, c = torch.randn(2, 16, 3, 3, dtype=torch.float64), torch.randn(2, 16, 3, 3, dtype=torch.float64)
    results = []
    for layer in (plain, ck):
        xi, ci = x.clone().requires_grad_(), c.clone().requires_grad_()
        params = [p for p in layer.parameters() if p.requires_grad]
        out = layer(xi, ci, return_trajectory=True, return_energy=True)
        loss = out.x.sin().sum() + out.trajectory.cos().sum() + out.energy.sum()
        results.append((out, torch.autograd.grad(loss, [xi, ci] + params)))
        # Each output on its own too: gradients that reach only some of the outputs.
        for pick in ("x", "energy"):
            o = layer(xi, ci, return_energy=True)
            part = o.x.sum() if pick == "x" else o.energy[:, 2].sum()
            results[-1] += (torch.autograd.grad(part, [xi, ci] + params, allow_unused=True),)
    (a, *ga), (b, *gb) = results
    for u, v in zip(a, b):
        assert torch.allclose(u, v, atol=1e-12)
    for grads_a, grads_b in zip(ga, gb):
        for u, v in zip(grads_a, grads_b):
            assert (u is None and v is None) or torch.allclose(u, v, atol=1e-11)


def test_checkpointing_under_bf16_autocast_recomputes_the_same_step():
    torch.manual_seed(0)
    plain = KuramotoLayer(16, n=4, coupling="attn", grid=(3, 3), heads=2, steps=4, learn_gamma=True)
    ck = KuramotoLayer(
        16, n=4, coupling="attn", grid=(3, 3), heads=2, steps=4, learn_gamma=True, speed=Speed(checkpoint=True)
    )
    ck.load_state_dict(plain.state_dict())
    x, c = torch.randn(2, 16, 3, 3), torch.randn(2, 16, 3, 3)
    grads = []
    for layer in (plain, ck):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x, c)
        grads.append(torch.autograd.grad(out.square().sum(), list(layer.parameters())))
    for u, v in zip(*grads):
        assert torch.allclose(u, v, rtol=1e-5, atol=1e-6)


def test_bf16_autocast_keeps_state_in_float32():
    torch.manual_seed(0)
    layer = KuramotoLayer(16, n=4, coupling="attn", grid=(3, 3), heads=2, steps=4)
    x, c = torch.randn(2, 16, 3, 3), torch.randn(2, 16, 3, 3)
    with torch.no_grad():
        ref = layer(x, c)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = layer(x, c)
    assert out.dtype == torch.float32
    assert torch.allclose(_norms(out, 4), torch.ones(()), atol=1e-6)
    assert (out - ref).abs().max() < 0.1


def test_inference_memory_does_not_grow_with_steps():
    """Without gradients and trajectory, every intermediate state is freed: only the result survives."""
    import weakref

    layer = KuramotoLayer(8, n=4, coupling="conv", steps=1)
    x = torch.randn(1, 8, 4, 4)
    for T in (4, 64):
        refs = []
        with torch.no_grad():
            result = layer.run(
                x, x, steps=T, on_step=lambda t, state, e, refs=refs: refs.append(weakref.ref(state.data))
            ).x
        alive = [r() for r in refs if r() is not None]
        assert len(refs) == T
        assert len(alive) <= 1 and all(a is result for a in alive)


def test_stack_carries_state_and_feeds_readout():
    torch.manual_seed(0)
    layers = [KuramotoLayer(8, n=4, coupling="conv", steps=2) for _ in range(2)]
    readouts = [Readout(8, 8, group=4) for _ in range(2)]
    stack = KuramotoStack(layers, readouts)
    x, c = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    out, states, energies = stack(x, c, return_states=True, return_energy=True)
    with torch.no_grad():
        x1 = layers[0](x, c)
        x2 = layers[1](x1, readouts[0](x1))
        assert torch.allclose(states[1], x2, atol=1e-6)
        assert torch.allclose(out, readouts[1](x2), atol=1e-6)
    assert len(energies) == 2 and energies[0].shape == (2, 3)


def test_readout_is_rotation_invariant_within_groups():
    torch.manual_seed(0)
    ro = Readout(4, 3, group=2)
    x = torch.randn(2, 4, 3, 3)
    # a rotation of the whole oscillator state does not change ||W x|| only if W commutes; here test the norm+bias rule
    z = ro.proj(x).unflatten(1, (3, 2))
    assert torch.allclose(ro(x), z.norm(dim=2) + ro.bias[:, None, None])
    tok = ro(x.flatten(2).transpose(1, 2))
    assert torch.allclose(tok, ro(x).flatten(2).transpose(1, 2), atol=1e-6)


@pytest.mark.parametrize("omega", ["global", "per_pair", "none", "identity"])
@pytest.mark.parametrize("coupling", ["conv", "attn"])
def test_fused_update_matches_plain_autograd(omega, coupling):
    """The eager step's hand-derived backward equals autograd through the plain expression."""
    torch.manual_seed(0)
    layer = KuramotoLayer(
        8,
        n=4,
        coupling=coupling,
        grid=(3, 3),
        heads=2,
        omega=omega,
        omega_init=0.4,
        learn_gamma=True,
        gamma=0.7,
        steps=3,
    ).double()
    if omega == "per_pair":
        with torch.no_grad():
            layer.omega_param.add_(torch.randn_like(layer.omega_param) * 0.3)
    x0 = torch.randn(2, 8, 3, 3, dtype=torch.float64)
    c0 = torch.randn(2, 8, 3, 3, dtype=torch.float64)
    results = []
    for fused in (True, False):
        layer.speed = Speed(fused_update=fused)
        layer.zero_grad()
        x, c = x0.clone().requires_grad_(True), c0.clone().requires_grad_(True)
        r = layer(x, c, return_energy=True)
        (r.x.sin().sum() + r.energy.square().sum() * 0.01).backward()
        grads = [p.grad.clone() for p in layer.parameters() if p.grad is not None]
        results.append((r.x.detach(), r.energy.detach(), x.grad, c.grad, grads))
    for a, b in zip(results[0][:4], results[1][:4]):
        assert torch.allclose(a, b, atol=1e-10)
    assert len(results[0][4]) == len(results[1][4]) > 0
    for a, b in zip(results[0][4], results[1][4]):
        assert torch.allclose(a, b, atol=1e-10)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_attention_kernels_agree(dtype):
    """The matmul kernel (auto's choice for CPU bf16) computes the same attention as sdpa."""
    from akorn.core.fast import attend

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 10, 8, dtype=dtype, requires_grad=True) for _ in range(3))
    outs = []
    for kernel in ("sdpa", "matmul"):
        o = attend(q, k, v, kernel)
        (g,) = torch.autograd.grad(o.float().square().sum(), q)
        outs.append((o.float(), g.float()))
    tol = 1e-5 if dtype == torch.float32 else 3e-2
    assert torch.allclose(outs[0][0], outs[1][0], atol=tol, rtol=tol)
    assert torch.allclose(outs[0][1], outs[1][1], atol=tol * 10, rtol=tol)
    with pytest.raises(ValueError, match="attention"):
        AttentionCoupling(8, heads=2, positions="none", attention="flash")


def test_matmul_attention_op_gradients_and_compile():
    """The matmul kernel is one custom op: exact float64 gradients, and inductor keeps it (no SDPA swap)."""
    from torch._inductor.utils import run_and_get_code

    from akorn.core.fast.attention_op import matmul_attention

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 7, 4, dtype=torch.float64, requires_grad=True) for _ in range(3))
    assert torch.autograd.gradcheck(matmul_attention, (q, k, v))
    torch.library.opcheck(torch.ops.akorn.matmul_attention.default, (q, k, v, 0.5))
    q, k, v = (t.detach().float() for t in (q, k, v))
    out, codes = run_and_get_code(torch.compile(matmul_attention), q, k, v)
    assert torch.allclose(out, matmul_attention(q, k, v), atol=1e-6)
    code = "\n".join(codes)
    assert "matmul_attention" in code and "scaled_dot_product" not in code


@pytest.mark.parametrize("positions", ["gta", "rope"])
def test_pair_orders_compute_the_same_coupling(positions):
    torch.manual_seed(0)
    att = AttentionCoupling(32, heads=2, positions=positions, grid=(3, 4), pair_order="interleaved").double()
    if positions == "gta":
        with torch.no_grad():
            for name in "qkvo":
                getattr(att.gta, f"mat_{name}").add_(0.3 * torch.randn_like(getattr(att.gta, f"mat_{name}")))
    x = torch.randn(2, 12, 32, dtype=torch.float64, requires_grad=True)
    outs = []
    for order in ("interleaved", "halves"):
        att.pair_order = order
        y = att(x)
        grads = torch.autograd.grad(y.sin().sum(), [x] + list(att.parameters()))
        outs.append((y, grads))
    assert torch.allclose(outs[0][0], outs[1][0], atol=1e-12)
    for g0, g1 in zip(outs[0][1], outs[1][1]):
        assert torch.allclose(g0, g1, atol=1e-12)
    assert AttentionCoupling(128, heads=2, grid=(2, 2)).pair_order == "halves"  # half head: 32 channels
    assert AttentionCoupling(128, heads=8, grid=(2, 2)).pair_order == "interleaved"  # half head: 8
    with pytest.raises(ValueError, match="pair_order"):
        AttentionCoupling(32, heads=2, grid=(2, 2), pair_order="zigzag")


@pytest.mark.parametrize("omega", ["global", "per_pair", "identity", "none"])
@pytest.mark.parametrize("checkpoint", [False, True])
def test_state_layouts_give_the_same_dynamics(omega, checkpoint):
    """Planar (component-major) and interleaved state layouts: same states, energies and gradients."""
    torch.manual_seed(0)
    kw = dict(coupling="attn", heads=2, grid=(3, 4), omega=omega, steps=3)
    ref = KuramotoLayer(32, n=4, speed=Speed(state_layout="interleaved", checkpoint=checkpoint), **kw).double()
    planar = KuramotoLayer(32, n=4, speed=Speed(state_layout="planar", checkpoint=checkpoint), **kw).double()
    with torch.no_grad():
        if omega == "per_pair":
            ref.omega_param.add_(0.2 * torch.randn_like(ref.omega_param))
        for name in "qkvo":
            m = getattr(ref.coupling.gta, f"mat_{name}")
            m.add_(0.3 * torch.randn_like(m))
    planar.load_state_dict(ref.state_dict())
    assert planar.planar and not ref.planar
    x = torch.randn(2, 12, 32, dtype=torch.float64)
    c = torch.randn(2, 12, 32, dtype=torch.float64)
    results = []
    for layer in (ref, planar):
        xi, ci = x.clone().requires_grad_(), c.clone().requires_grad_()
        out = layer(xi, ci, return_trajectory=True, return_energy=True)
        params = [p for p in layer.parameters() if p.requires_grad]
        loss = out.x.sin().sum() + out.trajectory.cos().sum() + out.energy.sum()
        results.append((out, torch.autograd.grad(loss, [xi, ci] + params)))
    (a, ga), (b, gb) = results
    for u, v in zip(a, b):
        assert torch.allclose(u, v, atol=1e-12)
    for u, v in zip(ga, gb):
        assert torch.allclose(u, v, atol=1e-11)


def test_state_layout_choice_and_bad_values():
    assert KuramotoLayer(32, n=4, coupling="attn", heads=2, grid=(3, 4)).planar  # auto: planar for attention
    assert not KuramotoLayer(32, n=4, coupling="conv").planar
    with pytest.raises(ValueError, match="state_layout='planar' needs"):
        KuramotoLayer(32, n=4, coupling="conv", speed=Speed(state_layout="planar"))
    with pytest.raises(ValueError, match="state_layout must be one of"):
        Speed(state_layout="columns")
    with pytest.raises(ValueError, match="planar_n must be a positive divisor"):
        AttentionCoupling(32, heads=2, grid=(3, 4))(torch.randn(1, 12, 32), planar_n=5)


def test_compiled_step_matches_eager():
    """``compile=True`` runs the plain update through inductor (planar layout here): same values and gradients."""
    torch.manual_seed(0)
    kw = dict(coupling="attn", heads=2, grid=(3, 4), omega="per_pair", steps=3)
    eager = KuramotoLayer(32, n=4, **kw)
    compiled = KuramotoLayer(32, n=4, speed=Speed(compile=True), **kw)
    compiled.load_state_dict(eager.state_dict())
    x, c = torch.randn(2, 12, 32), torch.randn(2, 12, 32)
    outs = []
    for layer in (eager, compiled):
        xi = x.clone().requires_grad_()
        out = layer(xi, c, return_energy=True)
        grads = torch.autograd.grad(
            out.x.sin().sum() + out.energy.sum(), [xi] + [p for p in layer.parameters() if p.requires_grad]
        )
        outs.append((out.x, out.energy, grads))
    assert torch.allclose(outs[0][0], outs[1][0], atol=1e-5)
    assert torch.allclose(outs[0][1], outs[1][1], rtol=1e-5, atol=1e-4)
    for g0, g1 in zip(outs[0][2], outs[1][2]):
        assert torch.allclose(g0, g1, rtol=1e-4, atol=1e-4)


def test_deep_copy_of_a_compiled_model_runs_its_own_weights():
    """The EMA is a deep copy (AveragedModel): its compiled step and readout must use the copy's
    weights, not the weights of the model it was copied from."""
    import copy

    from akorn.experiments.sudoku.models import SudokuAKOrN

    torch.manual_seed(0)
    model = SudokuAKOrN(channels=16, heads=2, steps=2, compile=True).eval()
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for p in twin.parameters():
            p.mul_(1.5)
    eager = SudokuAKOrN(channels=16, heads=2, steps=2).eval()
    eager.load_state_dict(twin.state_dict())
    quiz = torch.randint(0, 10, (2, 81))
    noise = torch.randn(2, 81, 16)
    with torch.no_grad():
        torch.testing.assert_close(twin(quiz, noise=noise), eager(quiz, noise=noise), rtol=1e-4, atol=1e-4)
        state = twin.start(quiz, noise=noise)
        torch.testing.assert_close(twin.read(state), eager.read(eager.start(quiz, noise=noise)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_compiled_coupling_without_gradients_matches_eager(precision):
    """Without gradients the compiled coupling adds the projection biases outside the matmuls
    (halves order, where the q, k, v bias is permuted): same values as eager mode."""
    from torch._inductor.utils import run_and_get_code

    torch.manual_seed(0)
    att = AttentionCoupling(128, heads=2, grid=(3, 4))
    assert att.pair_order == "halves"
    with torch.no_grad():
        att.qkv.bias.normal_()
        att.out.bias.normal_()
    x = torch.randn(2, 12, 128)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    with torch.no_grad(), autocast:
        want = att(x, planar_n=4).float()
        got, codes = run_and_get_code(torch.compile(att), x, planar_n=4)
    tol = 1e-5 if precision == "fp32" else 0.05
    assert got.dtype == (torch.float32 if precision == "fp32" else torch.bfloat16)
    assert torch.allclose(got.float(), want, atol=tol, rtol=tol)
    assert "materialize" in "\n".join(codes)


def test_materialize_is_a_contiguous_copy_with_identity_gradient():
    from akorn.core.fast.materialize import materialize

    t = torch.randn(4, 6, dtype=torch.float64).t().requires_grad_()
    out = materialize(t)
    assert out.is_contiguous() and torch.equal(out, t) and out.data_ptr() != t.data_ptr()
    assert torch.autograd.gradcheck(materialize, (t,))
    torch.library.opcheck(torch.ops.akorn.materialize.default, (t.detach(),))
