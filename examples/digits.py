"""Train an MLP and a CNN on scikit-learn's handwritten digits with cygrad's nn, optim and DataLoader.

The 1797 8x8 images ship with scikit-learn (nothing is downloaded). Two models are trained,
one after the other, with ``optim.SGD`` (Nesterov momentum, weight decay), a cosine
learning-rate schedule and ``nn.CrossEntropyLoss``; batches come from ``utils.data.DataLoader``:

- ``mlp``: ``Linear(64, 256), ReLU, Dropout, Linear(256, 128), ReLU, Linear(128, 10)``
  on the flattened images (at least 95% test accuracy);
- ``cnn``: two 3x3 ``Conv2d`` + ``BatchNorm2d`` + ``ReLU`` blocks, ``MaxPool2d(2)``, a third
  convolution, ``AdaptiveAvgPool2d(1)`` and a ``Linear`` head on the 1x8x8 images (at least
  97% test accuracy).

The same file runs on PyTorch with ``--backend torch``: only the import differs.

    python examples/digits.py                  # cygrad: the MLP, then the CNN
    python examples/digits.py --model cnn      # only the CNN
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
    p.add_argument("--model", choices=["mlp", "cnn", "both"], default="both",
                   help="which model to train (default: both, the MLP then the CNN)")
    p.add_argument("--epochs", type=int, default=None,
                   help="passes over the training set (default: 40 for the MLP, 20 for the CNN)")
    p.add_argument("--batch-size", type=int, default=64, help="minibatch size (default: 64)")
    p.add_argument("--lr", type=float, default=0.05, help="peak SGD learning rate (default: 0.05)")
    p.add_argument("--hidden", type=int, default=256, help="units of the first hidden layer (default: 256)")
    p.add_argument("--seed", type=int, default=0, help="seed for the weights and the data order (default: 0)")
    p.add_argument("--threads", type=int, default=None, help="set_num_threads(N) before training")
    p.add_argument("--min-accuracy", type=float, default=None,
                   help="exit with status 1 if a test accuracy is below this (default: 0.95 for the MLP, "
                        "0.97 for the CNN)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
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


def build_mlp(nn, n_hidden, n_out=10):
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, n_hidden), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(n_hidden, n_hidden // 2), nn.ReLU(),
        nn.Linear(n_hidden // 2, n_out),
    )


def build_cnn(nn, n_out=10):
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),       # 32 x 8 x 8
        nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(),      # 64 x 8 x 8
        nn.MaxPool2d(2),                                                     # 64 x 4 x 4
        nn.Conv2d(64, 128, 3, padding=1), nn.BatchNorm2d(128), nn.ReLU(),    # 128 x 4 x 4
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.1),              # 128
        nn.Linear(128, n_out),
    )


MODELS = {
    # kind: (builder, default epochs, default minimum accuracy)
    "mlp": (lambda nn, args: build_mlp(nn, args.hidden), 40, 0.95),
    "cnn": (lambda nn, args: build_cnn(nn), 20, 0.97),
}


def evaluate(torch, model, X, y):
    model.eval()
    with torch.no_grad():
        pred = model(torch.tensor(X)).argmax(dim=1)
    model.train()
    return float((pred == torch.tensor(y)).float().mean())


def train(torch, data, args, kind, X_train, y_train, X_test, y_test):
    """Train one model; return its test accuracy."""
    nn = torch.nn
    builder, default_epochs, _ = MODELS[kind]
    epochs_n = args.epochs if args.epochs is not None else default_epochs
    torch.manual_seed(args.seed)
    model = builder(nn, args)
    loader = data.DataLoader(data.TensorDataset(torch.tensor(X_train), torch.tensor(y_train)),
                             batch_size=args.batch_size, shuffle=True,
                             generator=torch.Generator().manual_seed(args.seed))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs_n * len(loader))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)

    print(f"\n== {kind} ==")
    print(model)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params} parameters; {len(X_train)} training / {len(X_test)} test images")

    start = time.perf_counter()
    epochs = tqdm(range(epochs_n), desc=f"{kind} ({args.backend})", unit="epoch",
                  disable=args.no_progress, file=sys.stdout)
    for _ in epochs:
        total, seen = 0.0, 0
        for xb, yb in tqdm(loader, leave=False, unit="batch", disable=args.no_progress, file=sys.stdout):
            opt.zero_grad()
            loss = loss_fn(model(xb), yb)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(yb)
            seen += len(yb)
        epochs.set_postfix(loss=f"{total / seen:.4f}")
    train_time = time.perf_counter() - start

    accuracy = evaluate(torch, model, X_test, y_test)
    print(f"final training loss: {total / seen:.4f}")
    print(f"{kind} test accuracy: {100 * accuracy:.2f}% ({len(y_test)} test images)")
    print(f"{kind} wall time: {train_time:.2f} s for {epochs_n} epochs")
    return accuracy


def main(argv=None):
    args = parse_args(argv)
    torch = importlib.import_module(args.backend)  # `import cygrad as torch`, or the real thing
    data = importlib.import_module(f"{args.backend}.utils.data")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"backend: {args.backend} {torch.__version__}")

    X_train, y_train, X_test, y_test = load_data(args.seed)
    # Images as (N, 1, 8, 8): the CNN convolves them, the MLP flattens them first.
    X_train, X_test = X_train.reshape(-1, 1, 8, 8), X_test.reshape(-1, 1, 8, 8)
    kinds = ["mlp", "cnn"] if args.model == "both" else [args.model]
    failed = []
    for kind in kinds:
        accuracy = train(torch, data, args, kind, X_train, y_train, X_test, y_test)
        minimum = args.min_accuracy if args.min_accuracy is not None else MODELS[kind][2]
        if accuracy < minimum:
            failed.append(f"{kind}: {100 * accuracy:.2f}% < {100 * minimum:.1f}%")
    if failed:
        print("FAILED: accuracy below the threshold (" + "; ".join(failed) + ")", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
