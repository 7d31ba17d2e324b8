"""Train an MLP on scikit-learn's handwritten digits with cygrad's nn, optim and DataLoader.

The 1797 8x8 images ship with scikit-learn (nothing is downloaded). The model is
``nn.Sequential(Linear(64, 256), ReLU, Dropout, Linear(256, 128), ReLU, Linear(128, 10))``
trained with ``optim.SGD`` (Nesterov momentum, weight decay), a cosine learning-rate
schedule and ``nn.CrossEntropyLoss``; batches come from ``utils.data.DataLoader``.

The same file runs on PyTorch with ``--backend torch``: only the import differs.

    python examples/digits.py                  # cygrad, 40 epochs
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
    p.add_argument("--epochs", type=int, default=40, help="passes over the training set (default: 40)")
    p.add_argument("--batch-size", type=int, default=64, help="minibatch size (default: 64)")
    p.add_argument("--lr", type=float, default=0.05, help="peak SGD learning rate (default: 0.05)")
    p.add_argument("--hidden", type=int, default=256, help="units of the first hidden layer (default: 256)")
    p.add_argument("--seed", type=int, default=0, help="seed for the weights and the data order (default: 0)")
    p.add_argument("--threads", type=int, default=None, help="set_num_threads(N) before training")
    p.add_argument("--min-accuracy", type=float, default=0.95,
                   help="exit with status 1 if the test accuracy is below this (default: 0.95)")
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


def build_model(nn, n_in, n_hidden, n_out=10):
    return nn.Sequential(
        nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Dropout(0.1),
        nn.Linear(n_hidden, n_hidden // 2), nn.ReLU(),
        nn.Linear(n_hidden // 2, n_out),
    )


def evaluate(torch, model, X, y):
    model.eval()
    with torch.no_grad():
        pred = model(torch.tensor(X)).argmax(dim=1)
    model.train()
    return float((pred == torch.tensor(y)).float().mean())


def main(argv=None):
    args = parse_args(argv)
    torch = importlib.import_module(args.backend)  # `import cygrad as torch`, or the real thing
    nn = torch.nn
    data = importlib.import_module(f"{args.backend}.utils.data")
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    X_train, y_train, X_test, y_test = load_data(args.seed)
    torch.manual_seed(args.seed)
    model = build_model(nn, X_train.shape[1], args.hidden)
    loader = data.DataLoader(data.TensorDataset(torch.tensor(X_train), torch.tensor(y_train)),
                             batch_size=args.batch_size, shuffle=True,
                             generator=torch.Generator().manual_seed(args.seed))
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, nesterov=True, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=args.epochs * len(loader))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)

    print(f"backend: {args.backend} {torch.__version__}")
    print(model)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"{n_params} parameters; {len(X_train)} training / {len(X_test)} test images")

    start = time.perf_counter()
    epochs = tqdm(range(args.epochs), desc=f"training ({args.backend})", unit="epoch",
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
    print(f"test accuracy: {100 * accuracy:.2f}% ({len(y_test)} test images)")
    print(f"wall time: {train_time:.2f} s for {args.epochs} epochs")
    if accuracy < args.min_accuracy:
        print(f"FAILED: accuracy below {100 * args.min_accuracy:.1f}%", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
