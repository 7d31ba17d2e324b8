"""Sequence-kernel workloads (rnn): recurrent layers forward + backward through time, float32."""

from __future__ import annotations

from . import register


def _rnn_step(lib, cls):
    lib.manual_seed(0)
    model = cls(128, 256)
    x = lib.randn(64, 32, 128)

    def step():
        model.zero_grad()
        out, _ = model(x)
        out.sum().backward()

    return step


@register("lstm_64x32", target=1.3,
          description="nn.LSTM(128, 256) on seq 64 x batch 32: forward, sum of the output, backward, float32")
def lstm_64x32(lib):
    return _rnn_step(lib, lib.nn.LSTM)


@register("gru_64x32", target=1.3,
          description="nn.GRU(128, 256) on seq 64 x batch 32: forward, sum of the output, backward, float32")
def gru_64x32(lib):
    return _rnn_step(lib, lib.nn.GRU)
