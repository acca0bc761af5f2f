"""Checks of a recurrent ``Cell``: its torch ops against each other, against its NumPy reference, and their
gradients against numerical ones, all in float64 on small random inputs.

``cell_problems(cell)`` returns one line per disagreement (empty: the cell is consistent); the tests run it
for every registered cell, and a user can run it on a cell of their own::

    from visgrad.captioning.cell_checks import cell_problems
    assert cell_problems(MY_CELL) == []
"""

from __future__ import annotations

import torch

from visgrad.captioning.cells import Cell

TOLERANCE = 1e-10  # float64 values computed two ways (different summation orders)


def _gap(a, b) -> float:
    return float((torch.as_tensor(a) - torch.as_tensor(b)).abs().max())


def _inputs(cell: Cell, N: int, T: int, V: int, W: int, H: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return (0.5 * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()

    m = cell.gates
    return {"x": rand(N, T, W), "h0": rand(N, H), "Wx": rand(W, m * H), "Wh": rand(H, m * H),
            "b": rand(m * H),
            "W_embed": rand(V, W), "words": torch.randint(0, V, (N, T), generator=g),
            "state": tuple(rand(N, H) for _ in cell.state)}


def _value_problems(cell: Cell, t: dict) -> list[str]:
    """Shapes of the step; step vs reference; sequence vs stepping vs reference; fused words vs embedding."""
    name, problems = f"{cell.label} cell", []
    weights = (t["Wx"], t["Wh"], t["b"])
    x0 = t["x"][:, 0]
    state = cell.step(x0, t["state"], *weights)
    shapes = [tuple(s.shape) for s in state] if isinstance(state, tuple) else None
    expected = [tuple(t["h0"].shape)] * len(cell.state)
    if shapes != expected:
        return [f"{name}: step must return a tuple of {len(cell.state)} (N, H) tensors {cell.state}, got "
                f"{shapes if shapes is not None else type(state).__name__}"]
    as_np = {k: v.detach().numpy() for k, v in t.items() if k != "state"}
    np_weights = (as_np["Wx"], as_np["Wh"], as_np["b"])
    if cell.reference_step is not None:
        reference = cell.reference_step(as_np["x"][:, 0], tuple(s.detach().numpy() for s in t["state"]),
                                        *np_weights)
        gap = max(_gap(s.detach(), r) for s, r in zip(state, reference, strict=True))
        if gap > TOLERANCE:
            problems.append(f"{name}: step differs from reference_step by {gap:.1e}")
    h = cell.forward(t["x"], t["h0"], *weights).detach()
    stepped, hs = cell.initial_state(t["h0"]), []
    for step in range(t["x"].shape[1]):
        stepped = cell.step(t["x"][:, step], stepped, *weights)
        hs.append(stepped[0].detach())
    gap = _gap(h, torch.stack(hs, dim=1))
    if gap > TOLERANCE:
        problems.append(f"{name}: sequence differs from looping step (from the state (h0, 0, ...)) by "
                        f"{gap:.1e}")
    if cell.reference_sequence is not None:
        gap = _gap(h, cell.reference_sequence(as_np["x"], as_np["h0"], *np_weights))
        if gap > TOLERANCE:
            problems.append(f"{name}: sequence differs from reference_sequence by {gap:.1e}")
    fused = cell.forward_words(t["words"], t["W_embed"], t["h0"], *weights).detach()
    gap = _gap(fused, cell.forward(t["W_embed"].detach()[t["words"]], t["h0"], *weights).detach())
    if gap > TOLERANCE:
        problems.append(f"{name}: word_sequence differs from sequence over W_embed[words] by {gap:.1e}")
    return problems


def _gradient_problems(cell: Cell, t: dict) -> list[str]:
    """Every op's gradients (hand-written or autograd) against central differences."""
    weights = (t["Wx"], t["Wh"], t["b"])
    checks = {
        "step": (lambda x, *args: cell.step(x, args[:len(cell.state)], *args[len(cell.state):]),
                 (t["x"][:, 0].detach().requires_grad_(), *t["state"], *weights)),
        "sequence": (cell.forward, (t["x"], t["h0"], *weights)),
        "word_sequence": (lambda W_embed, *args: cell.forward_words(t["words"], W_embed, *args),
                          (t["W_embed"], t["h0"], *weights)),
    }
    return [f"{cell.label} cell: the gradients of {op} differ from numerical ones"
            for op, (fn, args) in checks.items()
            if not torch.autograd.gradcheck(fn, args, eps=1e-6, atol=1e-6, raise_exception=False)]


def cell_problems(cell: Cell, seed: int = 0) -> list[str]:
    """One line per inconsistency of ``cell`` on random float64 inputs (N=2, T=3, V=6, W=4, H=3)."""
    inputs = _inputs(cell, 2, 3, 6, 4, 3, seed)
    problems = _value_problems(cell, inputs)
    return problems or _gradient_problems(cell, inputs)
