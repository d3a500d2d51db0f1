"""Eq. 2 consensus: the fused kernel against a per-coordinate Python oracle of the rule."""

from __future__ import annotations

import torch

from mergenet.merge_strategies import registry


def oracle(base, deltas, weights, eps, gamma, lam):
    out = []
    for i in range(base.numel()):
        vals = [float(d.reshape(-1)[i]) for d in deltas]
        act = [(v, w) for v, w in zip(vals, weights, strict=True) if abs(v) >= eps and v != 0]
        b = float(base.reshape(-1)[i])
        if not act or sum(w for _, w in act) == 0:
            out.append(b)
            continue
        wa = sum(w for _, w in act)
        wp = sum(w for v, w in act if v > 0)
        wn = sum(w for v, w in act if v < 0)
        if max(wp, wn) >= gamma * wa:
            sign = 1 if wp >= wn else -1
            agree = [(v, w) for v, w in act if (v > 0) == (sign > 0)]
            delta = sign * sum(w * abs(v) for v, w in agree) / sum(w for _, w in agree)
        else:
            cum = 0.0
            for v, w in sorted(act):
                cum += w
                if cum >= wa / 2:
                    delta = v
                    break
        out.append(b + lam * delta)
    return torch.tensor(out).reshape(base.shape)


def _run(base, deltas, weights, **params):
    s = registry.get("consensus")
    return s.merge_tensor(base, deltas, weights, s.space.contain(params))


def test_hand_cases():
    base = torch.zeros(4)
    deltas = [
        torch.tensor([1e-9, 0.2, 0.3, -0.5]),
        torch.tensor([0.0, 0.4, -0.1, 0.1]),
        torch.tensor([0.0, 0.6, 0.2, 0.2]),
    ]
    out = _run(base, deltas, [1.0, 1.0, 1.0], epsilon=1e-6, gamma=0.9, **{"lambda": 1.0})
    assert out[0] == 0  # every candidate below epsilon: keep the base
    assert torch.isclose(out[1], torch.tensor(0.4))  # unanimous +: mean magnitude
    assert torch.isclose(out[2], torch.tensor(0.2))  # 2 of 3 < gamma: median of (-0.1, 0.2, 0.3)
    assert torch.isclose(out[3], torch.tensor(0.1))  # median of (-0.5, 0.1, 0.2)


def test_matches_oracle_on_random_inputs():
    g = torch.Generator().manual_seed(0)
    for k, eps, gamma, lam in [(3, 1e-3, 0.6, 1.0), (5, 0.0, 0.8, 1.3), (2, 1e-3, 0.5, 0.7)]:
        base = torch.randn(40, 7, generator=g)
        deltas = [torch.randn(40, 7, generator=g) * 0.01 for _ in range(k)]
        weights = (torch.rand(k, generator=g) + 0.2).tolist()
        ours = _run(base, deltas, weights, epsilon=eps, gamma=gamma, **{"lambda": lam})
        expected = oracle(base, deltas, weights, eps, gamma, lam)
        assert float((ours - expected).abs().max()) <= 1e-6
