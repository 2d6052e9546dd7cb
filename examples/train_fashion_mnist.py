#!/usr/bin/env python3
"""Train a small CNN on Fashion-MNIST with cpucnn, report test accuracy and speed, save the model.

    python examples/train_fashion_mnist.py                      # 3 epochs, batch 64, all cores
    python examples/train_fashion_mnist.py --threads 2 --plot history.png
    python examples/train_fashion_mnist.py --limit 5000 --epochs 1   # a quick run
    python examples/train_fashion_mnist.py --compare-torch      # the same model in PyTorch, side by side
    python examples/train_fashion_mnist.py --augment            # then again with random crop + flip
    mpirun -np 2 python examples/train_fashion_mnist.py --distributed   # data-parallel over MPI

Fashion-MNIST is read from $CPUCNN_DATA/fashion-mnist, ~/.cpucnn/datasets/fashion-mnist or
/usr/share/datasets/fashion-mnist (Debian: apt install dataset-fashion-mnist); see
cpucnn.datasets.load_fashion_mnist. Nothing is downloaded.

The last 5,000 training images (or 1/12 of them with --limit) are held out for validation and
both frameworks train on the rest. Seconds per epoch count the training steps only, not the
validation pass.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

import cpucnn as cc

L = cc.layers


def build_model(seed: int) -> cc.Sequential:
    return cc.Sequential([
        L.Conv2D(32, 3, padding="same"), L.ReLU(), L.MaxPool2D(2),
        L.Conv2D(64, 3, padding="same"), L.ReLU(), L.MaxPool2D(2),
        L.Flatten(),
        L.Dense(128), L.ReLU(), L.Dropout(0.25),
        L.Dense(10),
    ], input_shape=(1, 28, 28), seed=seed)


class TrainTimer(cc.callbacks.Callback):
    """Seconds spent in each epoch's training steps (from epoch start to its last batch)."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: List[float] = []
        self._t0 = self._last = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._t0 = self._last = time.perf_counter()

    def on_batch_end(self, batch, logs=None):
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(self._last - self._t0)


def split(x: np.ndarray, y: np.ndarray) -> Tuple[Tuple[np.ndarray, np.ndarray], Tuple[np.ndarray, np.ndarray]]:
    n_val = 5000 if len(x) == 60000 else max(1, len(x) // 12)
    return (x[:-n_val], y[:-n_val]), (x[-n_val:], y[-n_val:])


def augmented(train: Tuple[np.ndarray, np.ndarray], args) -> "cc.data.Dataset":
    """The training set as a cpucnn.data pipeline: uint8 images, shuffled, random 28x28 crops of
    the image padded by 2, random horizontal flips, made in a C++ worker thread."""
    x_u8 = np.rint(train[0] * 255).astype(np.uint8)   # the files' bytes again (x was bytes / 255)
    return (cc.data.Dataset.from_arrays(x_u8, train[1]).shuffle(seed=args.seed).map_float(scale=1 / 255)
            .random_crop(28, padding=2).flip_horizontal().batch(args.batch_size).prefetch(2, workers=1))


def train_cpucnn(args, train, val, test, augment: bool = False) -> Dict[str, float]:
    main_rank = cc.distributed.is_main()
    model = build_model(args.seed)
    model.compile(optimizer=cc.optimizers.Adam(lr=args.lr), loss="cross_entropy", metrics=["accuracy"])
    if not augment and main_rank:
        model.summary()
    info = cc.cpu_info()
    print(f"cpucnn {cc.__version__}: isa={info['isa']} threads={cc.get_num_threads()}"
          + (" (augmented: random crop + flip)" if augment else ""))
    timer = TrainTimer()
    if augment:
        history = model.fit(augmented(train, args), epochs=args.epochs, validation_data=val, callbacks=[timer],
                            verbose=1)
    elif args.distributed:
        # --batch-size is the global batch: each of the size() processes takes its share of it.
        size = cc.distributed.size()
        print(f"data-parallel over {size} processes, {args.batch_size // size} images each per step")
        history = model.fit(*train, epochs=args.epochs, batch_size=max(1, args.batch_size // size),
                            validation_data=val, callbacks=[timer], seed=args.seed, verbose=1, distributed=True)
    else:
        history = model.fit(*train, epochs=args.epochs, batch_size=args.batch_size, validation_data=val,
                            callbacks=[timer], seed=args.seed, verbose=1)
    result = model.evaluate(*test, distributed=args.distributed)
    per_epoch = float(np.mean(timer.seconds)) if timer.seconds else float("nan")
    print(f"cpucnn{' (augmented)' if augment else ''}: test accuracy {result['accuracy']:.4f} "
          f"(loss {result['loss']:.4f}), {per_epoch:.1f} s/epoch ({len(train[0]) / per_epoch:,.0f} img/s)")
    if history.interrupted:
        print("(training was interrupted; the model trained so far is saved)")
    out = args.out
    if augment:
        root, ext = os.path.splitext(args.out)
        out = root + "_augmented" + ext
    if main_rank:
        model.save(out)
    print(f"saved {out}")
    if args.plot and main_rank:
        try:
            history.plot(args.plot)
            print(f"wrote {args.plot}")
        except ImportError as e:
            print(f"no plot: {e}")
    return {"accuracy": result["accuracy"], "seconds_per_epoch": per_epoch, "epochs": len(timer.seconds)}


def train_torch(args, train, val, test) -> Optional[Dict[str, float]]:
    """The same architecture, optimizer, batch size, epochs and thread count in PyTorch."""
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
    except ImportError:
        print("PyTorch is not installed: skipping the comparison (pip install torch)")
        return None
    torch.set_num_threads(cc.get_num_threads())
    torch.manual_seed(args.seed)
    model = nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Dropout(0.25),
        nn.Linear(128, 10),
    )
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    x, y = torch.from_numpy(train[0]), torch.from_numpy(train[1])
    gen = torch.Generator().manual_seed(args.seed)

    def accuracy(xs: np.ndarray, ys: np.ndarray) -> float:
        model.eval()
        hits = 0
        with torch.no_grad():
            for s in range(0, len(xs), 256):
                out = model(torch.from_numpy(xs[s:s + 256]))
                hits += int((out.argmax(1) == torch.from_numpy(ys[s:s + 256])).sum())
        return hits / len(xs)

    print(f"torch {torch.__version__}: threads={torch.get_num_threads()}")
    seconds = []
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(x), generator=gen)
        t0 = time.perf_counter()
        loss_sum = 0.0
        for s in range(0, len(x), args.batch_size):
            idx = perm[s:s + args.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += loss.item() * len(idx)
        seconds.append(time.perf_counter() - t0)
        print(f"torch epoch {epoch + 1}/{args.epochs} - {seconds[-1]:.1f}s - loss: {loss_sum / len(x):.4f} - "
              f"val_accuracy: {accuracy(*val):.4f}")
    acc = accuracy(*test)
    per_epoch = float(np.mean(seconds))
    print(f"torch: test accuracy {acc:.4f}, {per_epoch:.1f} s/epoch ({len(x) / per_epoch:,.0f} img/s)")
    return {"accuracy": acc, "seconds_per_epoch": per_epoch, "epochs": args.epochs}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=0, help="threads for training (default: all cores)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    p.add_argument("--out", default="fashion_cnn.cnn", help="where to save the model (default fashion_cnn.cnn)")
    p.add_argument("--plot", default=None, metavar="PNG", help="write the loss/accuracy curves here")
    p.add_argument("--limit", type=int, default=None, metavar="N", help="use the first N training images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="folder with the Fashion-MNIST IDX files")
    p.add_argument("--compare-torch", action="store_true",
                   help="then train the same model in PyTorch (same settings) and compare")
    p.add_argument("--distributed", action="store_true",
                   help="data-parallel training over MPI (cpucnn.distributed; launch with mpirun -np N): "
                        "--batch-size is the global batch, split across the processes")
    p.add_argument("--augment", action="store_true",
                   help="then train it again with random crop (padding 2) + horizontal flip through "
                        "cpucnn.data and compare the test accuracy")
    args = p.parse_args(argv)
    if args.epochs < 1 or args.batch_size < 1 or (args.limit is not None and args.limit < 2):
        p.error("--epochs and --batch-size must be positive, --limit at least 2")

    if args.distributed:
        if args.augment or args.compare_torch:
            p.error("--distributed trains the plain model only (no --augment, --compare-torch)")
        # Threads: the machine's cores shared among its processes unless --threads says otherwise.
        cc.distributed.init(threads=args.threads if args.threads > 0 else None)
    else:
        cc.set_num_threads(args.threads)   # <= 0: all cores
    if not cc.distributed.is_main():
        sys.stdout = open(os.devnull, "w")   # process 0 prints
    try:
        (x, y), test = cc.datasets.load_fashion_mnist(args.data)
    except FileNotFoundError as e:
        print(e, file=sys.stderr)
        return 1
    if args.limit is not None:
        x, y = x[:args.limit], y[:args.limit]
    train, val = split(x, y)
    print(f"Fashion-MNIST: {len(train[0])} training, {len(val[0])} validation, {len(test[0])} test images")

    ours = train_cpucnn(args, train, val, test)
    if args.augment:
        aug = train_cpucnn(args, train, val, test, augment=True)
        print()
        print(f"{'':18} {'test accuracy':>13} {'s/epoch':>8}   ({args.epochs} epochs, batch {args.batch_size})")
        for name, r in (("plain", ours), ("crop + flip", aug)):
            print(f"{name:18} {r['accuracy']:>13.4f} {r['seconds_per_epoch']:>8.1f}")
        print(f"augmentation changed test accuracy by {aug['accuracy'] - ours['accuracy']:+.4f}")
    if args.compare_torch:
        theirs = train_torch(args, train, val, test)
        if theirs is not None:
            print()
            print(f"{'':8} {'test accuracy':>13} {'s/epoch':>8} {'img/s':>8}   "
                  f"({args.epochs} epochs, batch {args.batch_size}, Adam lr {args.lr:g}, "
                  f"{cc.get_num_threads()} threads)")
            for name, r in (("cpucnn", ours), ("pytorch", theirs)):
                print(f"{name:8} {r['accuracy']:>13.4f} {r['seconds_per_epoch']:>8.1f} "
                      f"{len(train[0]) / r['seconds_per_epoch']:>8,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
