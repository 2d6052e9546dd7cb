"""fit on a PyTorch DataLoader (a file of its own: importing torch makes the ASan job's leak
check slow, so .ci/sanitize.sh runs it with the other torch files)."""

import numpy as np
import pytest

import cpucnn as cc


def test_fit_on_a_torch_dataloader():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=128)
    x = rng.random((128, 1, 8, 8), dtype=np.float32) * 0.2
    x[y == 1, :, :, 4:] += 0.6
    x[y == 0, :, :, :4] += 0.6
    tds = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    loader = torch.utils.data.DataLoader(tds, batch_size=32, shuffle=True)
    m = cc.Sequential([cc.layers.Conv2D(4, 3, padding="same"), cc.layers.ReLU(), cc.layers.Flatten(),
                       cc.layers.Dense(2)], input_shape=(1, 8, 8), seed=0)
    m.compile(optimizer=cc.optimizers.Adam(lr=1e-2), loss="cross_entropy", metrics=["accuracy"])
    h = m.fit(loader, epochs=3, verbose=0)
    assert len(h.history["loss"]) == 3 and h.history["accuracy"][-1] > 0.9
    assert m.evaluate(loader)["accuracy"] > 0.9
    assert m.predict(loader).shape == (128, 2)

