"""One real training run: a small CNN on the first 10k Fashion-MNIST training images, one epoch,
must reach > 80% accuracy on the 10k test images. Skipped when the dataset is not installed
(Debian's dataset-fashion-mnist, $CPUCNN_DATA/fashion-mnist or ~/.cpucnn/datasets/fashion-mnist)."""

import numpy as np
import pytest

cc = pytest.importorskip("cpucnn")

L = cc.layers


@pytest.fixture(scope="module")
def fashion():
    try:
        return cc.datasets.load_fashion_mnist()
    except FileNotFoundError as e:
        pytest.skip(f"Fashion-MNIST is not installed: {str(e).splitlines()[0]}")


@pytest.mark.slow
def test_fashion_mnist_one_epoch_on_10k_images(fashion, threads):
    (x, y), (xt, yt) = fashion
    assert x.shape == (60000, 1, 28, 28) and x.dtype == np.float32 and xt.shape == (10000, 1, 28, 28)
    # One thread: the accuracy does not depend on the thread count. How fast it trains is for
    # benchmarks/ and the example, never measured here.
    cc.set_num_threads(1)
    model = cc.Sequential([
        L.Conv2D(16, 3, padding="same"), L.BatchNorm2D(), L.ReLU(), L.MaxPool2D(2),
        L.Conv2D(32, 3, padding="same"), L.BatchNorm2D(), L.ReLU(), L.MaxPool2D(2),
        L.Flatten(), L.Dense(10),
    ], input_shape=(1, 28, 28), seed=0)
    model.compile(cc.optimizers.Adam(lr=2e-3), loss="cross_entropy", metrics=["accuracy"])
    history = model.fit(x[:10000], y[:10000], epochs=1, batch_size=32, validation_data=(xt[:1000], yt[:1000]),
                        seed=0, verbose=0)
    result = model.evaluate(xt, yt)
    print(f"Fashion-MNIST, 10k images, 1 epoch: test accuracy {result['accuracy']:.4f}, "
          f"loss {result['loss']:.4f}")
    assert history.history["loss"][0] < 0.8
    assert result["accuracy"] > 0.80, result
    assert np.argmax(model.predict(xt[:500]), axis=1).tolist() != [0] * 500
