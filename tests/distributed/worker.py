"""Run under mpirun by tests/distributed/test_distributed.py: ``worker.py MODE OUT [args]``.

Each mode trains or evaluates with cpucnn.distributed and writes what the test checks as JSON to
``OUT.<rank>.json`` (every process) or ``OUT`` (process 0)."""

import json
import os
import signal
import sys

import numpy as np

import cpucnn as cc
from cpucnn import distributed as dist

L = cc.layers


def data(n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 3, 8, 8)).astype(np.float32)
    y = (x[:, 0, :4, :].mean(axis=(1, 2)) > 0).astype(np.int64) + 2 * (x[:, 1].mean(axis=(1, 2)) > 0)
    return x, y


def build(opt, bn=True, seed=1):
    # No bias before BatchNorm: its gradient is zero up to rounding, which Adam would amplify.
    layers = [L.Conv2D(8, 3, padding="same", use_bias=not bn)] + ([L.BatchNorm2D()] if bn else []) + [
        L.ReLU(), L.MaxPool2D(2), L.Conv2D(8, 3, padding="same"), L.ReLU(), L.Flatten(), L.Dense(4)]
    m = cc.Sequential(layers, input_shape=(3, 8, 8), seed=seed)
    optimizer = cc.optimizers.SGD(lr=0.05, momentum=0.9) if opt == "sgd" else cc.optimizers.Adam(lr=1e-3)
    m.compile(optimizer=optimizer, loss="cross_entropy", metrics=["accuracy"])
    return m


def rel_errors(a_list, b_list):
    """Per weight: max |a - b| / max |b| (the error relative to the tensor's scale)."""
    return [float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-30)) for a, b in zip(a_list, b_list)]


def write(out, obj, everyone=False):
    if everyone:
        with open(f"{out}.{dist.rank()}.json", "w") as f:
            json.dump(obj, f)
    elif dist.is_main():
        with open(out, "w") as f:
            json.dump(obj, f)


def equivalence(out, opt, n, global_batch, epochs):
    """fit(distributed=True) with batch global_batch / size vs one process with global_batch."""
    x, y = data(n)
    per = global_batch // dist.size()
    m = build(opt)
    h = m.fit(x, y, batch_size=per, epochs=epochs, seed=5, verbose=0, distributed=True, sync_batchnorm=True,
              validation_data=data(50, seed=9))
    if dist.is_main():
        ref = build(opt)
        hr = ref.fit(x, y, batch_size=global_batch, epochs=epochs, seed=5, verbose=0, validation_data=data(50, seed=9))
        write(out, {"errors": rel_errors(m.get_weights(), ref.get_weights()),
                    "steps": int(m._m.optimizer_steps), "ref_steps": int(ref._m.optimizer_steps),
                    "loss": h.history["loss"], "ref_loss": hr.history["loss"],
                    "val_loss": h.history["val_loss"], "ref_val_loss": hr.history["val_loss"]})


class Spy:
    """Stands in for the model's core object and records the samples of each training step."""

    def __init__(self, core, record):
        self._core, self._record = core, record

    def compute_gradients(self, xb, yb, *rest):
        self._record.extend(int(v) for v in xb[:, 0, 0, 0])
        return self._core.compute_gradients(xb, yb, *rest)

    def compute_gradients_overlapped(self, xb, yb, *rest):
        self._record.extend(int(v) for v in xb[:, 0, 0, 0])
        return self._core.compute_gradients_overlapped(xb, yb, *rest)

    def __getattr__(self, name):
        return getattr(self._core, name)


def sharding(out, n, batch, epochs):
    """Which samples each process trains on in each epoch of fit(distributed=True)."""
    x = np.zeros((n, 3, 8, 8), np.float32)
    x[:, 0, 0, 0] = np.arange(n)           # sample i carries i
    y = np.arange(n) % 4
    m = build("sgd", bn=False)
    m.compile(optimizer=cc.optimizers.SGD(lr=0.0), loss="cross_entropy")
    per_epoch = []
    for epoch in range(epochs):
        record = []
        core = m._m
        m._m = Spy(core, record)
        try:
            m.fit(x, y, batch_size=batch, epochs=epoch + 1, initial_epoch=epoch, seed=11, verbose=0, distributed=True)
        finally:
            m._m = core
        per_epoch.append(record)
    write(out, {"samples": per_epoch, "shard": [[ix.tolist() for ix in dist.shard(n, batch, e, seed=11)]
                                                for e in range(epochs)]}, everyone=True)


def resume(out, phase, ckpt, batch):
    """phase save: 2 epochs, checkpointed by ModelCheckpoint; phase load: 2 more epochs from it."""
    x, y = data(256, seed=3)
    if phase == "save":
        m = build("sgd")
        cb = cc.callbacks.ModelCheckpoint(ckpt, monitor="loss")
        m.fit(x, y, batch_size=batch, epochs=2, seed=4, verbose=0, distributed=True, sync_batchnorm=True, callbacks=[cb])
        write(out, {"saved": cb.saved, "hash": dist.weights_hash(m)}, everyone=True)
        return
    m = cc.load(ckpt)
    start = m.get_weights()
    m.fit(x, y, batch_size=batch, epochs=4, initial_epoch=2, seed=4, verbose=0, distributed=True, sync_batchnorm=True)
    res = {"hash": dist.weights_hash(m), "steps": int(m._m.optimizer_steps)}
    if dist.is_main():
        ref = build("sgd")                        # one process, the whole run, the same global batch
        ref.fit(x, y, batch_size=batch * dist.size(), epochs=4, seed=4, verbose=0)
        res["errors"] = rel_errors(m.get_weights(), ref.get_weights())
        res["start_errors"] = rel_errors(start, cc.load(ckpt).get_weights())
    write(out, res, everyone=True)


def fail(out, how):
    """Process 1 raises (or is killed) in its 3rd step; the others would wait for it forever."""
    x, y = data(512)

    class Boom(cc.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            if dist.rank() == 1 and batch == 2:
                if how == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise ValueError("boom on process 1")

    build("sgd").fit(x, y, batch_size=16, epochs=50, verbose=0, distributed=True, callbacks=[Boom()])
    write(out, {"finished": True})


def output(out, ckpt):
    """verbose=2 lines and ModelCheckpoint under 2 processes."""
    x, y = data(128)
    cb = cc.callbacks.ModelCheckpoint(ckpt, monitor="loss")
    stop = cc.callbacks.EarlyStopping(monitor="val_loss", patience=0, min_delta=10.0)   # stops after epoch 2
    m = build("sgd")
    h = m.fit(x, y, batch_size=16, epochs=5, seed=2, verbose=2, distributed=True, callbacks=[cb, stop],
              validation_data=data(40, seed=8))
    xv, yv = data(41, seed=8)
    pred = m.predict(xv, batch_size=8, distributed=True)   # process 0 gathers, the others get None
    ev = m.evaluate(xv, yv, batch_size=8, distributed=True, metrics=["accuracy", "confusion_matrix"])
    local = m.evaluate(xv, yv, batch_size=8, metrics=["accuracy", "confusion_matrix"])
    write(out, {"saved": cb.saved, "epochs": h.epoch, "logs": h.history, "hash": dist.weights_hash(m),
                "predict_none": pred is None,
                "predict_error": None if pred is None else float(np.abs(pred - m.predict(xv)).max()),
                "eval": [ev["loss"], ev["accuracy"], ev["confusion_matrix"].tolist()],
                "eval_local": [local["loss"], local["accuracy"], local["confusion_matrix"].tolist()]}, everyone=True)


def fashion(out, n, batch, epochs):
    """Fashion-MNIST: the first n training images, 2 processes x batch/2, test accuracy on the test set."""
    (x, y), (xt, yt) = cc.datasets.load_fashion_mnist()
    x, y = x[:n], y[:n]
    m = fashion_model()
    m.fit(x, y, batch_size=batch // dist.size(), epochs=epochs, seed=0, verbose=0, distributed=True)
    res = m.evaluate(xt, yt, distributed=True)
    write(out, {"accuracy": res["accuracy"], "loss": res["loss"]})


def fashion_model():
    m = cc.Sequential([L.Conv2D(16, 3, padding="same"), L.ReLU(), L.MaxPool2D(2),
                       L.Conv2D(32, 3, padding="same"), L.ReLU(), L.MaxPool2D(2),
                       L.Flatten(), L.Dense(64), L.ReLU(), L.Dense(10)], input_shape=(1, 28, 28), seed=0)
    m.compile(optimizer=cc.optimizers.Adam(lr=2e-3), loss="cross_entropy", metrics=["accuracy"])
    return m


def main():
    dist.init(threads=1, bucket_mb=float(os.environ.get("BUCKET_MB", "1.0")))
    mode, out, *args = sys.argv[1:]
    if mode == "equivalence":
        equivalence(out, args[0], int(args[1]), int(args[2]), int(args[3]))
    elif mode == "sharding":
        sharding(out, int(args[0]), int(args[1]), int(args[2]))
    elif mode == "resume":
        resume(out, args[0], args[1], int(args[2]))
    elif mode == "fail":
        fail(out, args[0])
    elif mode == "output":
        output(out, args[0])
    elif mode == "fashion":
        fashion(out, int(args[0]), int(args[1]), int(args[2]))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
