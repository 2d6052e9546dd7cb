"""Dense inference from weights packed once per parameter version
(GemmTile::packed_b: W^T as the GEMM's NR-column panels, made on the first
inference and again whenever the weights or the kernel table change), on
every ISA, against the float64 reference: ragged units and features (panels
with padded columns, depths over several K blocks), batches on the GEMV path
(<= 4 rows: W read in place) and on the packed GEMM, 1 and 2 threads; and
that the packing follows set_weights, a training step and an ISA switch."""

import numpy as np
import pytest

import cpucnn as cc
from harness import assert_close, seeded_rng

L = cc.layers

# (features as (c, h, w), units)
SHAPES = [((3, 7, 11), 37), ((64, 12, 12), 128), ((1, 1, 5), 1), ((2, 5, 30), 17), ((8, 4, 4), 256)]


def _ref(x, w, b):
    return x.reshape(len(x), -1).astype(np.float64) @ w.T.astype(np.float64) + b


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("n", [1, 4, 5, 64, 257])
@pytest.mark.parametrize("shape, units", SHAPES, ids=str)
def test_dense_inference_matches_reference(isa, threads, shape, units, n, nt):
    cc.set_num_threads(nt)
    m = cc.Sequential([L.Flatten(), L.Dense(units)], input_shape=shape, seed=1)
    x = seeded_rng("dense", shape, units, n).standard_normal((n,) + shape).astype(np.float32)
    w, b = m.get_weights()
    what = f"Dense({units}) isa={isa} threads={nt} x={x.shape}"
    assert_close(m.predict(x), _ref(x, w, b), what)
    assert_close(m.predict(x), _ref(x, w, b), what + " (packed weights reused)")


def test_dense_packing_follows_weight_changes(isa, threads):
    cc.set_num_threads(2)
    m = cc.Sequential([L.Flatten(), L.Dense(19)], input_shape=(4, 6, 6), seed=2)
    m.compile(optimizer=cc.optimizers.SGD(lr=0.5), loss="mse")
    rng = seeded_rng("dense-version")
    x = rng.standard_normal((33, 4, 6, 6)).astype(np.float32)
    w, b = m.get_weights()
    assert_close(m.predict(x), _ref(x, w, b), f"{isa} first")
    m.set_weights([w * -3.0, b])
    assert_close(m.predict(x), _ref(x, w * -3.0, b), f"{isa} after set_weights")
    m.layers[1].weight = w * 0.5
    assert_close(m.predict(x), _ref(x, w * 0.5, b), f"{isa} after layer.weight =")
    m.train_on_batch(x, rng.standard_normal((33, 19)).astype(np.float32))
    w2, b2 = m.get_weights()
    assert not np.array_equal(w2, w * 0.5)
    assert_close(m.predict(x), _ref(x, w2, b2), f"{isa} after a training step")


def test_dense_packing_follows_the_isa(isa, threads):
    # Packed by one ISA's table (its NR), used after a switch to another.
    cc.set_num_threads(1)
    m = cc.Sequential([L.Flatten(), L.Dense(23)], input_shape=(3, 5, 5), seed=4)
    x = seeded_rng("dense-isa").standard_normal((40, 3, 5, 5)).astype(np.float32)
    w, b = m.get_weights()
    for other in cc.available_isas():
        cc.set_isa(other)
        assert_close(m.predict(x), _ref(x, w, b), f"packed under {isa}, run under {other}")
        cc.set_isa(isa)
        assert_close(m.predict(x), _ref(x, w, b), f"back to {isa} from {other}")
