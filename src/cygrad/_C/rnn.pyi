"""Recurrent-layer kernels, float32 / float64 (see rnn.pyx).

One call runs one layer in one direction over a packed, time-major batch: step ``t`` owns rows
``off[t] .. off[t] + batch_sizes[t]`` (``off`` = running sum of the non-increasing
``batch_sizes``). Hidden states live in ``hbuf`` (N + B rows: B initial states and N outputs,
output row ``r`` at ``hbuf[out_off + r]``); ``prev[r]`` is the ``hbuf`` / ``cbuf`` row that row
``r`` starts from. Unused buffers are passed as empty (0, 0) / (0,) arrays. Modes: 0 RNN tanh,
1 RNN ReLU, 2 LSTM (gates i, f, g, o), 3 GRU (gates r, z, n). Every shape and index is checked
(ValueError); results do not depend on the thread count (fixed chunks of hidden units).
"""

import numpy as np
import numpy.typing as npt

_Array = npt.NDArray[np.floating]
_Index = npt.NDArray[np.int64]

def recurrent_forward(
    mode: int,
    gates: _Array,
    hbuf: _Array,
    cbuf: _Array,
    tc: _Array,
    mbuf: _Array,
    hn: _Array,
    w_hh: _Array,
    b_hn: _Array,
    w_hr: _Array,
    batch_sizes: _Index,
    prev: _Index,
    out_off: int,
    reverse: bool,
) -> None:
    """Run the recurrence over all steps.

    gates (N, ng) holds x W_ih^T + biases on entry (GRU: without b_hn) and the gate activations
    on return; hbuf (N + B, Hh) gets the output rows; LSTM: cbuf (N + B, H) the cell states,
    tc (N, H) tanh(c), mbuf (N, H) o * tanh(c) when projecting (w_hr (Hh, H)); GRU: hn (N, H)
    gets W_hn h + b_hn (b_hn (H,)).
    """

def recurrent_backward(
    mode: int,
    gates: _Array,
    hbuf: _Array,
    cbuf: _Array,
    tc: _Array,
    hn: _Array,
    w_hh: _Array,
    w_hr: _Array,
    dout: _Array,
    dh: _Array,
    dc: _Array,
    dgates: _Array,
    dgates_h: _Array,
    dht: _Array,
    batch_sizes: _Index,
    prev: _Index,
    out_off: int,
    reverse: bool,
) -> None:
    """Backpropagation through time over the buffers recurrent_forward left.

    dout (N, Hh): gradient of the output rows; dh (B, Hh) / dc (B, H): gradients of the final
    states on entry, of the initial states on return. Writes dgates (N, ng), the gradient of the
    gate pre-activations (input side), dgates_h (N, ng) for GRU (recurrent side: the n block
    times r) and dht (N, Hh) for a projection (total gradient of each h row).
    """

def matmul_panels(
    a: _Array,
    b: _Array,
    out: _Array,
    trans_a: bool,
    trans_b: bool,
    beta: float = 0.0,
) -> None:
    """out := op(a).op(b) + beta * out over fixed panels (thread-count independent results)."""
