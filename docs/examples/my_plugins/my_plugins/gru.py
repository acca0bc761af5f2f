"""A GRU cell (Cho et al. 2014) for visgrad's captioner, from a package of your own.

Gates r, z and the candidate n in CS231n's layout: Wx (W, 3H), Wh (H, 3H), b (3H,), blocks in that order.

    r = sigmoid(x Wx_r + h Wh_r + b_r)      z = sigmoid(x Wx_z + h Wh_z + b_z)
    n = tanh(x Wx_n + b_n + r * (h Wh_n))   h' = (1 - z) * n + z * h
"""

import numpy as np
import torch

from visgrad.captioning import Cell


def gru_step(x, state, Wx, Wh, b):
    """x (N, W), state (h (N, H),) -> (next_h,)."""
    (h,) = state
    ax, ah = x @ Wx + b, h @ Wh
    H = h.shape[1]
    r = torch.sigmoid(ax[:, :H] + ah[:, :H])
    z = torch.sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
    n = torch.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
    return ((1 - z) * n + z * h,)


def gru_step_numpy(x, state, Wx, Wh, b):
    """The same step in NumPy (float64), for visgrad's cell checks."""
    (h,) = state
    ax, ah = x @ Wx + b, h @ Wh
    H = h.shape[1]
    sigmoid = lambda a: 1 / (1 + np.exp(-a))
    r, z = sigmoid(ax[:, :H] + ah[:, :H]), sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
    n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])
    return ((1 - z) * n + z * h,)


GRU = Cell(name="gru", label="GRU", gates=3, state=("h",), step=gru_step, reference_step=gru_step_numpy)
