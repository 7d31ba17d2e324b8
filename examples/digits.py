"""Train a small MLP on scikit-learn's handwritten digits with raw cygrad tensors.

The 1797 8x8 images ship with scikit-learn (nothing is downloaded). The model is a
two-layer perceptron (64 -> 128 -> 10) written with plain tensors, ``@``, ``+``,
``relu`` and ``log_softmax``; gradients come from ``loss.backward()`` and the
parameters are updated by hand with SGD inside ``no_grad()``.

The same file runs on PyTorch with ``--backend torch``: only the import differs.

    python examples/digits.py                  # cygrad, 30 epochs
    python examples/digits.py --backend torch  # the very same code on PyTorch
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time

import numpy as np
from sklearn.datasets import load_digits
from tqdm import tqdm


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=["cygrad", "torch"], default="cygrad",
                   help="library to train with (default: cygrad)")
    p.add_argument("--epochs", type=int, default=30, help="passes over the training set (default: 30)")
    p.add_argument("--batch-size", type=int, default=64, help="minibatch size (default: 64)")
    p.add_argument("--lr", type=float, default=0.1, help="SGD learning rate (default: 0.1)")
    p.add_argument("--hidden", type=int, default=128, help="hidden units (default: 128)")
    p.add_argument("--seed", type=int, default=0, help="seed for the weights and the data order (default: 0)")
    p.add_argument("--threads", type=int, default=None, help="set_num_threads(N) before training")
    p.add_argument("--min-accuracy", type=float, default=0.95,
                   help="exit with status 1 if the test accuracy is below this (default: 0.95)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def load_data(seed):
    """Digits as standardised float32 arrays, split 80/20 with a fixed numpy RNG."""
    X, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(len(X))
    n_train = int(0.8 * len(X))
    train, test = perm[:n_train], perm[n_train:]
    mean = X[train].mean(axis=0)
    std = X[train].std(axis=0)
    std[std == 0] = 1.0  # some corner pixels are always 0
    X = ((X - mean) / std).astype(np.float32)
    return X[train], y[train].astype(np.int64), X[test], y[test].astype(np.int64)


def main(argv=None):
    args = parse_args(argv)
    torch = importlib.import_module(args.backend)  # `import cygrad as torch`, or the real thing
    F = torch.nn.functional
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    X_train, y_train, X_test, y_test = load_data(args.seed)
    rng = np.random.default_rng(args.seed)
    torch.manual_seed(args.seed)

    # Parameters: scaled Gaussian weights (He init for the ReLU layer), zero biases.
    n_in, n_hidden, n_out = X_train.shape[1], args.hidden, 10
    W1 = (torch.randn(n_in, n_hidden) * (2.0 / n_in) ** 0.5).requires_grad_()
    b1 = torch.zeros(n_hidden, requires_grad=True)
    W2 = (torch.randn(n_hidden, n_out) * (1.0 / n_hidden) ** 0.5).requires_grad_()
    b2 = torch.zeros(n_out, requires_grad=True)
    params = [W1, b1, W2, b2]

    def forward(x):
        h = F.relu(x @ W1 + b1)
        return h @ W2 + b2

    start = time.perf_counter()
    epochs = tqdm(range(args.epochs), desc=f"training ({args.backend})", unit="epoch",
                  disable=args.no_progress, file=sys.stdout)
    for _ in epochs:
        order = rng.permutation(len(X_train))
        total, seen = 0.0, 0
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            x = torch.tensor(X_train[idx])
            y = torch.tensor(y_train[idx])
            n = len(idx)

            logits = forward(x)
            loss = -(F.log_softmax(logits, dim=1)[torch.arange(n), y]).mean()
            loss.backward()

            with torch.no_grad():
                for p in params:
                    p -= args.lr * p.grad
                    p.grad = None

            total += loss.item() * n
            seen += n
        epochs.set_postfix(loss=f"{total / seen:.4f}")
    train_time = time.perf_counter() - start

    with torch.no_grad():
        logits = forward(torch.tensor(X_test))
    accuracy = float((logits.numpy().argmax(axis=1) == y_test).mean())

    print(f"backend: {args.backend} {torch.__version__}")
    print(f"test accuracy: {100 * accuracy:.2f}% ({len(y_test)} test images)")
    print(f"wall time: {train_time:.2f} s for {args.epochs} epochs")
    if accuracy < args.min_accuracy:
        print(f"FAILED: accuracy below {100 * args.min_accuracy:.1f}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
