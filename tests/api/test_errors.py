"""Bad input raises ValueError/TypeError naming the layer and the shapes; never a crash.

Also: every array layout and dtype numpy can give (non-contiguous, Fortran
order, float64, integers) trains and predicts exactly like a contiguous
float32 copy.
"""

import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import cpucnn as cc

L = cc.layers


def small_model(seed=0, compile=True, loss="cross_entropy"):
    m = cc.Sequential([L.Conv2D(4, 3), L.ReLU(), L.Flatten(), L.Dense(3)], input_shape=(2, 6, 6), seed=seed)
    if compile:
        m.compile(optimizer=cc.optimizers.SGD(lr=0.05, momentum=0.9), loss=loss)
    return m


@pytest.fixture
def model():
    return small_model()


@pytest.fixture
def data(rng):
    return rng.standard_normal((4, 2, 6, 6)).astype(np.float32), np.array([0, 1, 2, 0])


def shapes(*dims):
    """A regex matching each shape tuple, in order, anywhere in a message."""
    return ".*".join(re.escape(str(tuple(d))) for d in dims)


# ---------------------------------------------------------------------------
# Input shapes: predict / train_on_batch / evaluate / fit
# ---------------------------------------------------------------------------

BAD_X = [
    pytest.param((2, 6, 6), id="rank3-missing-batch"),
    pytest.param((1, 4, 2, 6, 6), id="rank5"),
    pytest.param((4, 72), id="flat"),
    pytest.param((4, 3, 6, 6), id="channels"),
    pytest.param((4, 2, 7, 6), id="height"),
    pytest.param((4, 2, 6, 5), id="width"),
]


@pytest.mark.parametrize("bad", BAD_X)
@pytest.mark.parametrize("call", ["predict", "train_on_batch", "evaluate", "fit"])
def test_wrong_input_shape_names_layer_and_shapes(model, call, bad):
    x = np.zeros(bad, dtype=np.float32)
    y = np.zeros(bad[0] if len(bad) > 3 else 4, dtype=np.int64)
    args = (x,) if call == "predict" else (x, y)
    kwargs = {"verbose": 0} if call == "fit" else {}
    pattern = r"Conv2D\(4, 3x3\).*\(N, 2, 6, 6\).*" + re.escape(str(bad))
    with pytest.raises(ValueError, match=pattern):
        getattr(model, call)(*args, **kwargs)


def test_wrong_input_shape_in_validation_data(model, data):
    x, y = data
    with pytest.raises(ValueError, match=r"Conv2D.*\(N, 2, 6, 6\).*\(4, 2, 5, 6\)"):
        model.fit(x, y, validation_data=(np.zeros((4, 2, 5, 6)), y), verbose=0)


def test_flat_model_reports_features(rng):
    m = cc.Sequential([L.Dense(3)], input_shape=(5,), seed=0)
    with pytest.raises(ValueError, match=r"Dense\(3\).*\(N, 5\).*\(2, 6\)"):
        m.predict(np.zeros((2, 6)))


@pytest.mark.parametrize("x", [
    pytest.param(np.full((4, 2, 6, 6), "a"), id="unicode"),
    pytest.param(np.full((4, 2, 6, 6), b"a"), id="bytes"),
    pytest.param(np.zeros((4, 2, 6, 6), dtype=object), id="object-of-ints"),
    pytest.param(np.zeros((4, 2, 6, 6), dtype=complex), id="complex"),
    pytest.param(np.zeros((4, 2, 6, 6), dtype="datetime64[s]"), id="datetime"),
    pytest.param(None, id="None"),
    pytest.param("abc", id="str"),
    pytest.param([[1.0, 2.0], [3.0]], id="ragged-list"),
])
@pytest.mark.parametrize("call", ["predict", "train_on_batch", "evaluate"])
def test_non_numeric_input_is_type_error(model, x, call):
    args = (x,) if call == "predict" else (x, [0, 1, 2, 0])
    with pytest.raises(TypeError, match="x must be a numeric array"):
        getattr(model, call)(*args)


def test_non_numeric_input_to_fit(model):
    with pytest.raises(TypeError, match="numeric"):
        model.fit(np.full((4, 2, 6, 6), "a"), [0, 1, 2, 0], verbose=0)


# ---------------------------------------------------------------------------
# Labels and targets
# ---------------------------------------------------------------------------

BAD_LABELS = [
    pytest.param([0, 1, 3, 0], ValueError, r"\[0, 3\).*got 3", id="too-large"),
    pytest.param([0, 1, -1, 0], ValueError, r"\[0, 3\).*got -1", id="negative"),
    pytest.param([0, 1, 1.5, 0], ValueError, "integer", id="non-integer-float"),
    pytest.param([0, 1, np.nan, 0], ValueError, "NaN", id="nan"),
    pytest.param([0, 1, np.inf, 0], ValueError, "NaN or Inf", id="inf"),
    pytest.param([0, 1, 1e20, 0], ValueError, r"\[0, 3\)", id="huge-float"),
    pytest.param(np.array([0, 1, 2**64 - 1, 0], dtype=np.uint64), ValueError, r"\[0, 3\).*18446744073709551615",
                 id="huge-uint64"),
    pytest.param([0, 1, 2], ValueError, "4 samples.*3", id="too-few"),
    pytest.param([0, 1, 2, 0, 1], ValueError, "4 samples.*5", id="too-many"),
    # (4, 3) would be probability / one-hot targets for the 3 outputs
    pytest.param(np.zeros((4, 2), dtype=np.int64), ValueError, r"\(4,\) or probability targets.*\(4, 2\)", id="2-d"),
    pytest.param(np.zeros((4, 3, 1), dtype=np.int64), ValueError, r"\(4,\)", id="3-d"),
    pytest.param(1, ValueError, r"\(4,\)", id="scalar"),
    pytest.param(["a", "b", "c", "d"], TypeError, "integers", id="strings"),
    pytest.param(np.array([0, 1, 2, 0], dtype=object), TypeError, "integers", id="object"),
    pytest.param(np.array([True, False, True, False]), TypeError, "boolean", id="bool"),
    pytest.param(None, TypeError, "integers", id="None"),
]


@pytest.mark.parametrize("y, exc, pattern", BAD_LABELS)
@pytest.mark.parametrize("call", ["train_on_batch", "evaluate", "fit"])
def test_bad_labels(model, data, call, y, exc, pattern):
    x, _ = data
    before = model.get_weights()
    kwargs = {"verbose": 0} if call == "fit" else {}
    with pytest.raises(exc, match=pattern):
        getattr(model, call)(x, y, **kwargs)
    for w0, w1 in zip(before, model.get_weights()):  # nothing was trained
        np.testing.assert_array_equal(w0, w1)


def test_labels_checked_in_core_too(data):
    """The compiled model validates labels itself (bypassing the Python checks)."""
    m = small_model()
    x, _ = data
    with pytest.raises(ValueError, match=r"\[0, 3\).*Dense\(3\).*\(3,\).*got 7 at index 2"):
        m._m.train_step(x, np.array([0, 1, 7, 0], dtype=np.int64))
    with pytest.raises(ValueError, match=r"\[0, 3\).*got -2"):
        m._m.evaluate(x, np.array([0, -2, 1, 0], dtype=np.int64), 2)


def test_mse_targets(data):
    m = small_model(loss="mse")
    x, _ = data
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4, 2\)"):
        m.train_on_batch(x, np.zeros((4, 2)))
    with pytest.raises(ValueError, match=r"\(4, 3\).*\(4,\)"):
        m.evaluate(x, np.zeros(4))
    with pytest.raises(ValueError, match="NaN or Inf"):
        m.train_on_batch(x, np.full((4, 3), np.nan))
    with pytest.raises(TypeError, match="numeric"):
        m.train_on_batch(x, np.full((4, 3), "a"))
    assert isinstance(m.train_on_batch(x, np.zeros((4, 3))), float)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e300])
@pytest.mark.parametrize("call", ["train_on_batch", "fit"])
def test_nan_inf_training_input(model, data, call, bad):
    x, y = data
    x = x.astype(np.float64)
    x[2, 1, 3, 4] = bad  # 1e300 does not fit float32: it becomes inf
    before = model.get_weights()
    kwargs = {"verbose": 0} if call == "fit" else {}
    with pytest.raises(ValueError, match=r"x contains NaN or Inf \(sample 2\)"):
        getattr(model, call)(x, y, **kwargs)
    for w0, w1 in zip(before, model.get_weights()):
        np.testing.assert_array_equal(w0, w1)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_evaluation_input(model, data, bad):
    x, y = data
    x[3, 0, 5, 5] = bad
    with pytest.raises(ValueError, match=r"x contains NaN or Inf \(sample 3\)"):
        model.evaluate(x, y)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_inf_validation_input_rejected_before_training(model, data, bad):
    x, y = data
    xv = x.copy()
    xv[1, 1, 0, 2] = bad
    before = model.get_weights()
    with pytest.raises(ValueError, match=r"validation_data x contains NaN or Inf \(sample 1\)"):
        model.fit(x, y, validation_data=(xv, y), verbose=0)
    # validation_split holds out the tail of x: its samples are named as in x.
    xs = np.concatenate([x, xv])
    with pytest.raises(ValueError, match=r"x contains NaN or Inf \(sample 5\)"):
        model.fit(xs, np.concatenate([y, y]), validation_split=0.5, verbose=0)
    assert model.optimizer.iterations == 0
    for w0, w1 in zip(before, model.get_weights()):
        np.testing.assert_array_equal(w0, w1)


def test_predict_does_not_reject_nan(model, data):
    """predict is not guarded like fit and evaluate: a NaN input gives an answer, and leaves the
    other samples' answers as they are."""
    x, _ = data
    clean = model.predict(x)
    x[2, 0, 3, 3] = np.nan
    out = model.predict(x)
    assert isinstance(out, np.ndarray) and out.shape == (4, 3)
    np.testing.assert_array_equal(np.delete(out, 2, axis=0), np.delete(clean, 2, axis=0))


NAN_NETS = {   # (layers, input shape), made fresh per test
    "conv-relu-dense": lambda: ([L.Conv2D(3, 3), L.ReLU(), L.Flatten(), L.Dense(3)], (2, 6, 6)),
    "conv-relu-maxpool-dense": lambda: ([L.Conv2D(4, 3, padding=1), L.ReLU(), L.MaxPool2D(2), L.Flatten(),
                                         L.Dense(3)], (2, 6, 6)),
    "winograd-relu-maxpool": lambda: ([L.Conv2D(16, 3, padding=1), L.ReLU(), L.Conv2D(16, 3, padding=1), L.ReLU(),
                                       L.MaxPool2D(2), L.GlobalAvgPool2D(), L.Dense(3)], (16, 12, 12)),
    "maxpool3x3-stride1": lambda: ([L.MaxPool2D(3, stride=1, padding=1), L.Flatten(), L.Dense(3)], (2, 6, 6)),
}


@pytest.mark.parametrize("net", list(NAN_NETS))
@pytest.mark.parametrize("n", [4, 64])
def test_predict_propagates_nan_like_pytorch(isa, net, n):
    """A NaN input gives NaN outputs for that sample, as in PyTorch (ReLU and MaxPool keep NaN; the
    Winograd, fused-ReLU and pooling kernels of every ISA), and leaves the other samples finite."""
    layers, shape = NAN_NETS[net]()
    model = cc.Sequential(layers, input_shape=shape, seed=0)
    x = np.random.default_rng(0).standard_normal((n,) + shape).astype(np.float32)
    x[2, 0, 3, 3] = np.nan
    out = model.predict(x)
    assert np.isnan(out[2]).all(), f"{net} isa={isa}: {out[2]}"
    assert np.isfinite(np.delete(out, 2, axis=0)).all()


def test_empty_batches(model):
    with pytest.raises(ValueError, match="at least one sample"):
        model.train_on_batch(np.zeros((0, 2, 6, 6)), np.zeros(0, dtype=np.int64))
    with pytest.raises(ValueError, match="at least one sample"):
        model.evaluate(np.zeros((0, 2, 6, 6)), np.zeros(0, dtype=np.int64))
    assert model.predict(np.zeros((0, 2, 6, 6))).shape == (0, 3)


@pytest.mark.parametrize("bs", [0, -1, 2.0, True, "8", None])
def test_bad_batch_size(model, data, bs):
    x, y = data
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.predict(x, batch_size=bs)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        model.evaluate(x, y, batch_size=bs)


# ---------------------------------------------------------------------------
# Impossible layer settings
# ---------------------------------------------------------------------------

BAD_LAYERS = [
    # (layers, input_shape, exception, pattern naming the layer and what is wrong)
    pytest.param(lambda: [L.Conv2D(0, 3)], (1, 4, 4), ValueError, r"Conv2D\(0, 3x3\).*filters must be positive",
                 id="conv-filters-0"),
    pytest.param(lambda: [L.Conv2D(-2, 3)], (1, 4, 4), ValueError, r"Conv2D.*filters must be positive",
                 id="conv-filters-negative"),
    pytest.param(lambda: [L.Conv2D(2, 0)], (1, 4, 4), ValueError, r"Conv2D.*kernel_size must be positive",
                 id="conv-kernel-0"),
    pytest.param(lambda: [L.Conv2D(2, 5)], (1, 4, 4), ValueError,
                 r"Conv2D\(2, 5x5\).*larger than the padded input 4x4.*\(1, 4, 4\)", id="conv-kernel-too-large"),
    pytest.param(lambda: [L.Conv2D(2, 7, padding=1)], (1, 4, 4), ValueError, r"Conv2D.*larger than.*6x6",
                 id="conv-kernel-larger-than-padded"),
    pytest.param(lambda: [L.Conv2D(2, 3, dilation=3)], (1, 6, 6), ValueError, r"Conv2D.*7x7.*larger.*6x6",
                 id="conv-dilated-too-large"),
    pytest.param(lambda: [L.Conv2D(2, 3, padding=-1)], (1, 4, 4), ValueError, r"Conv2D.*padding must not be negative",
                 id="conv-negative-padding"),
    pytest.param(lambda: [L.Conv2D(2, 3, stride=0)], (1, 4, 4), ValueError, r"Conv2D.*stride must be positive",
                 id="conv-stride-0"),
    pytest.param(lambda: [L.Conv2D(2, 3, dilation=0)], (1, 4, 4), ValueError, r"Conv2D.*dilation must be positive",
                 id="conv-dilation-0"),
    pytest.param(lambda: [L.Conv2D(4, 3, groups=2)], (3, 4, 4), ValueError,
                 r"Conv2D\(4, 3x3\).*groups \(2\) must divide the input channels.*\(3, 4, 4\)", id="groups-channels"),
    pytest.param(lambda: [L.Conv2D(3, 3, groups=2)], (4, 4, 4), ValueError,
                 r"Conv2D\(3, 3x3\).*groups \(2\) must divide filters \(3\)", id="groups-filters"),
    pytest.param(lambda: [L.Conv2D(3, 3, groups=0)], (4, 4, 4), ValueError, r"Conv2D.*groups must be positive",
                 id="groups-0"),
    pytest.param(lambda: [L.Conv2D(2, 3, padding="full")], (1, 4, 4), ValueError, r"Conv2D.*padding.*'full'",
                 id="unknown-padding-string"),
    pytest.param(lambda: [L.Conv2D(2, (1, 2, 3))], (1, 4, 4), ValueError, r"Conv2D.*kernel_size.*pair",
                 id="kernel-triple"),
    pytest.param(lambda: [L.Conv2D(2.5, 3)], (1, 4, 4), TypeError, r"Conv2D.*filters must be an integer",
                 id="filters-float"),
    pytest.param(lambda: [L.Conv2D(2, "3")], (1, 4, 4), TypeError, r"Conv2D.*kernel_size must be an integer",
                 id="kernel-str"),
    pytest.param(lambda: [L.Conv2D(2, 1)], (3,), ValueError,
                 r"Conv2D.*expects input \(channels, height, width\).*\(3,\)",
                 id="conv-on-flat"),
    pytest.param(lambda: [L.Flatten(), L.Dense(2**62)], (64, 64, 64), ValueError,
                 r"layer 1 Dense\(4611686018427387904\).*(too large|at most 2\^40)", id="dense-weight-overflows-int64"),
    pytest.param(lambda: [L.Conv2D(2**40, 3)], (2**30, 4, 4), ValueError, r"Conv2D.*(too large|at most 2\^24)",
                 id="conv-weight-overflows-int64"),
    pytest.param(lambda: [L.Flatten()], (2**40, 2**40, 2**40), ValueError, r"input_shape.*too large",
                 id="input-overflows-int64"),
    pytest.param(lambda: [L.Dense(2**63)], (3,), ValueError, r"Dense.*units.*int64", id="dense-units-beyond-int64"),
    pytest.param(lambda: [L.Dense(0)], (3,), ValueError, r"Dense\(0\).*units must be positive", id="dense-0"),
    pytest.param(lambda: [L.Dense(3)], (1, 4, 4), ValueError, r"Dense\(3\).*flat input.*\(1, 4, 4\).*Flatten",
                 id="dense-on-chw"),
    pytest.param(lambda: [L.MaxPool2D(5)], (1, 4, 4), ValueError, r"MaxPool2D\(5x5\).*larger than.*\(1, 4, 4\)",
                 id="pool-too-large"),
    pytest.param(lambda: [L.AvgPool2D(2, padding=2)], (1, 4, 4), ValueError, r"AvgPool2D.*padding.*half",
                 id="pool-padding-over-half"),
    pytest.param(lambda: [L.MaxPool2D(2, padding=-1)], (1, 4, 4), ValueError,
                 r"MaxPool2D.*padding must not be negative",
                 id="pool-negative-padding"),
    pytest.param(lambda: [L.MaxPool2D(2, stride=0)], (1, 4, 4), ValueError, r"MaxPool2D.*stride must be positive",
                 id="pool-stride-0"),
    pytest.param(lambda: [L.AvgPool2D(2, stride=-1)], (1, 4, 4), ValueError, r"AvgPool2D.*stride must be positive",
                 id="pool-stride-negative"),
    pytest.param(lambda: [L.MaxPool2D(0)], (1, 4, 4), ValueError, r"MaxPool2D.*pool_size must be positive",
                 id="pool-size-0"),
    pytest.param(lambda: [L.GlobalAvgPool2D()], (3,), ValueError, r"GlobalAvgPool2D.*\(channels, height, width\)",
                 id="gap-on-flat"),
    pytest.param(lambda: [L.BatchNorm2D()], (3,), ValueError, r"BatchNorm2D.*\(channels, height, width\).*\(3,\)",
                 id="bn-on-flat"),
    pytest.param(lambda: [L.BatchNorm2D(momentum=2)], (1, 2, 2), ValueError, r"BatchNorm2D.*momentum",
                 id="bn-momentum"),
    pytest.param(lambda: [L.BatchNorm2D(eps=0)], (1, 2, 2), ValueError, r"BatchNorm2D.*eps", id="bn-eps-0"),
    pytest.param(lambda: [L.BatchNorm2D(eps=float("inf"))], (1, 2, 2), ValueError, r"BatchNorm2D.*eps",
                 id="bn-eps-inf"),
    pytest.param(lambda: [L.Dropout(1.0)], (3,), ValueError, r"Dropout.*rate", id="dropout-1"),
    pytest.param(lambda: [L.Dropout(-0.1)], (3,), ValueError, r"Dropout.*rate", id="dropout-negative"),
    pytest.param(lambda: [L.Dropout(float("nan"))], (3,), ValueError, r"Dropout.*rate", id="dropout-nan"),
    pytest.param(lambda: [L.LeakyReLU(float("nan"))], (3,), ValueError, r"LeakyReLU.*alpha", id="leaky-nan"),
    pytest.param(lambda: [L.LeakyReLU("a")], (3,), TypeError, r"LeakyReLU.*alpha", id="leaky-str"),
]


@pytest.mark.parametrize("make, shape, exc, pattern", BAD_LAYERS)
def test_impossible_layer_settings(make, shape, exc, pattern):
    with pytest.raises(exc, match=pattern):
        cc.Sequential(make(), input_shape=shape, seed=0)


@pytest.mark.parametrize("shape, exc", [
    ((0, 2, 2), ValueError), ((1, -2, 2), ValueError), ((1, 2, 2, 2), ValueError), ((), ValueError),
    ("abc", TypeError), (None, TypeError),
])
def test_bad_input_shape(shape, exc):
    with pytest.raises(exc, match="input_shape"):
        cc.Sequential([L.Flatten()], input_shape=shape)


def test_bad_layer_lists(model):
    with pytest.raises(ValueError, match="at least one layer"):
        cc.Sequential([], input_shape=(1, 2, 2))
    with pytest.raises(TypeError, match="layer 1 must be a cpucnn layer, got int"):
        cc.Sequential([L.Flatten(), 3], input_shape=(1, 2, 2))
    with pytest.raises(ValueError, match="already belongs to another model"):
        cc.Sequential([model.layers[0]], input_shape=(2, 6, 6))


@pytest.mark.parametrize("seed", [-1, 2**64, 1.5, "1", True])
def test_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        cc.Sequential([L.Flatten()], input_shape=(1, 2, 2), seed=seed)


_CRASH_PROBE = """
import cpucnn as cc
try:
    cc.Sequential([cc.layers.Dense({units})], input_shape=({features},), seed=0)
except (ValueError, MemoryError) as e:
    print("raised", type(e).__name__)
else:
    print("built")
"""


@pytest.mark.parametrize("units, features", [
    pytest.param(2**61, 3, id="bytes-beyond-size_t"),
    pytest.param(2**62, 1, id="bytes-wrap-to-zero"),  # once a SIGSEGV: n*sizeof(float) wrapped to 0
])
def test_huge_parameter_count_raises_not_crashes(units, features):
    """Sizes that fit int64 but not memory: an exception, never a crash (run in a child process)."""
    code = textwrap.dedent(_CRASH_PROBE.format(units=units, features=features))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"child died with {r.returncode}: {r.stderr[-500:]}"
    assert r.stdout.startswith("raised"), r.stdout


# ---------------------------------------------------------------------------
# Weights of the wrong shape or type
# ---------------------------------------------------------------------------


def test_weight_setter_checks_shape(model):
    conv, dense = model.layers[0], model.layers[3]
    with pytest.raises(ValueError, match=r"Conv2D\(4, 3x3\).*weight.*" + shapes((4, 2, 3, 3), (4, 2, 3, 2))):
        conv.weight = np.zeros((4, 2, 3, 2))
    with pytest.raises(ValueError, match=r"Conv2D\(4, 3x3\).*weight.*" + shapes((4, 2, 3, 3), (2, 4, 3, 3))):
        conv.weight = np.zeros((2, 4, 3, 3))        # transposed layout
    with pytest.raises(ValueError, match=r"Conv2D.*bias.*" + shapes((4,), (5,))):
        conv.bias = np.zeros(5)
    with pytest.raises(ValueError, match=r"Dense\(3\).*weight.*" + shapes((3, 64), (64, 3))):
        dense.weight = np.zeros((64, 3))            # Keras layout instead of PyTorch's
    with pytest.raises(ValueError, match=r"Dense\(3\).*weight.*" + shapes((3, 64), (192,))):
        dense.weight = np.zeros(192)                # right size, wrong shape
    with pytest.raises(TypeError, match="weight must be numeric"):
        conv.weight = np.full((4, 2, 3, 3), "a")
    with pytest.raises(TypeError, match="bias must be numeric"):
        conv.bias = None
    with pytest.raises(TypeError, match="weight must be a numeric array"):
        conv.weight = [[1.0], [1.0, 2.0]]


def test_no_bias_and_unbuilt_layers():
    m = cc.Sequential([L.Flatten(), L.Dense(2, use_bias=False)], input_shape=(1, 2, 2), seed=0)
    assert m.layers[1].bias is None
    with pytest.raises(ValueError, match="without a bias"):
        m.layers[1].bias = np.zeros(2)
    with pytest.raises(ValueError, match="not part of a built model"):
        L.Dense(3).weight = np.zeros((3, 3))
    with pytest.raises(ValueError, match="not part of a built model"):
        L.Conv2D(3, 3).weight  # noqa: B018


def test_set_weights_checks_everything_before_writing(model):
    good = model.get_weights()
    bad = [w.copy() + 1 for w in good]
    bad[2] = np.zeros((3, 63))  # the Dense weight, one feature short
    with pytest.raises(ValueError, match=r"Dense\(3\).*weight.*" + shapes((3, 64), (3, 63))):
        model.set_weights(bad)
    for w0, w1 in zip(good, model.get_weights()):  # the first arrays were not written either
        np.testing.assert_array_equal(w0, w1)
    with pytest.raises(ValueError, match="needs 4 arrays, got 3"):
        model.set_weights(good[:3])
    with pytest.raises(ValueError, match="needs 4 arrays, got 5"):
        model.set_weights(good + [good[0]])
    with pytest.raises(TypeError, match=r"Conv2D.*weight must be a numeric array"):
        model.set_weights([[[1.0], [1.0, 2.0]]] + good[1:])


def test_core_set_param_checks_shape(model):
    with pytest.raises(ValueError, match=r"Conv2D.*weight must have shape \(4, 2, 3, 3\), got \(36,\)"):
        model._m.set_param(0, "weight", np.zeros(36, dtype=np.float32))
    with pytest.raises(ValueError, match="has no parameter 'gamma'"):
        model._m.set_param(0, "gamma", np.zeros(4, dtype=np.float32))
    with pytest.raises(IndexError):
        model._m.get_param(17, "weight")


# ---------------------------------------------------------------------------
# compile, optimizers, losses, metrics
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("call", ["train_on_batch", "evaluate", "fit"])
def test_training_before_compile(data, call):
    m = small_model(compile=False)
    x, y = data
    kwargs = {"verbose": 0} if call == "fit" else {}
    with pytest.raises(ValueError, match="must be compiled"):
        getattr(m, call)(x, y, **kwargs)
    with pytest.raises(ValueError, match="not compiled"):
        m._m.optimizer_config()
    assert m.predict(x).shape == (4, 3)  # inference needs no compile


@pytest.mark.parametrize("make, exc, pattern", [
    (lambda: cc.optimizers.SGD(lr=-0.1), ValueError, "SGD: lr must not be negative"),
    (lambda: cc.optimizers.Adam(lr=-1e-3), ValueError, "Adam: lr must not be negative"),
    (lambda: cc.optimizers.SGD(lr=float("nan")), ValueError, "SGD: lr must be finite"),
    (lambda: cc.optimizers.SGD(lr=float("inf")), ValueError, "SGD: lr must be finite"),
    (lambda: cc.optimizers.SGD(lr="0.1"), TypeError, "SGD: lr must be a number"),
    (lambda: cc.optimizers.SGD(lr=0.1, nesterov=True), ValueError, "SGD: nesterov needs a positive momentum"),
    (lambda: cc.optimizers.SGD(lr=0.1, momentum=-0.5), ValueError, "SGD: momentum"),
    (lambda: cc.optimizers.SGD(lr=0.1, weight_decay=-1), ValueError, "SGD: .*weight_decay"),
    (lambda: cc.optimizers.Adam(betas=(1.0, 0.9)), ValueError, r"Adam: betas must be in \[0, 1\)"),
    (lambda: cc.optimizers.Adam(betas=(0.9,)), ValueError, "Adam: betas must be a pair"),
    (lambda: cc.optimizers.Adam(betas=0.9), TypeError, "Adam: betas must be a pair"),
    (lambda: cc.optimizers.Adam(eps=-1.0), ValueError, "Adam: eps"),
    (lambda: cc.optimizers.Adam(weight_decay=-1.0), ValueError, "Adam: .*weight_decay"),
])
def test_bad_optimizer_settings(make, exc, pattern):
    with pytest.raises(exc, match=pattern):
        make()


def test_bad_optimizer_settings_reach_the_core_too(model):
    """The core validates an optimizer config on its own (file loads bypass Python)."""
    with pytest.raises(ValueError, match="nesterov needs a positive momentum"):
        model._m.compile("cross_entropy", '{"type": "SGD", "lr": 0.1, "nesterov": true}')
    with pytest.raises(ValueError, match="lr must not be negative"):
        model._m.compile("cross_entropy", '{"type": "Adam", "lr": -1}')
    with pytest.raises(ValueError, match="unknown optimizer 'Adagrad'"):
        model._m.compile("cross_entropy", '{"type": "Adagrad"}')
    with pytest.raises(ValueError, match="RMSprop: alpha must be in"):
        model._m.compile("cross_entropy", '{"type": "RMSprop", "alpha": 2}')
    with pytest.raises(ValueError, match="AdamW: clipnorm must be positive"):
        model._m.compile("cross_entropy", '{"type": "AdamW", "clipnorm": -1}')


def test_live_lr_setter(model):
    with pytest.raises(ValueError, match="lr must not be negative"):
        model.optimizer.lr = -1.0
    with pytest.raises(ValueError, match="finite"):
        model._m.lr = float("inf")
    model.optimizer.lr = 0.25
    assert model._m.lr == 0.25


@pytest.mark.parametrize("kwargs, exc, pattern", [
    (dict(loss="hinge"), ValueError, "unknown loss 'hinge'"),
    (dict(loss=None), ValueError, "unknown loss None"),
    (dict(metrics=["f1"]), ValueError, "unknown metric 'f1'"),
    (dict(metrics=[1]), TypeError, "metrics must be names"),
    (dict(optimizer="adagrad"), ValueError, "unknown optimizer 'adagrad'"),
    (dict(optimizer=3), TypeError, "optimizer"),
])
def test_bad_compile_arguments(kwargs, exc, pattern):
    m = small_model(compile=False)
    with pytest.raises(exc, match=pattern):
        m.compile(**kwargs)
    assert m.optimizer is None and not m._m.compiled


@pytest.mark.parametrize("loss", ["cross_entropy", "mse"])
def test_output_must_be_flat_for_a_loss(loss):
    m = cc.Sequential([L.Conv2D(2, 3)], input_shape=(1, 4, 4), seed=0)
    with pytest.raises(ValueError, match=loss + r" expects a flat model output.*Conv2D\(2, 3x3\).*\(2, 2, 2\)"):
        m.compile(optimizer="sgd", loss=loss)


def test_optimizer_bound_to_another_model():
    opt = cc.optimizers.SGD(lr=0.1)
    small_model(compile=False).compile(optimizer=opt)
    with pytest.raises(ValueError, match="already bound to another model"):
        small_model(compile=False).compile(optimizer=opt)


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def test_loading_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.cnn"):
        cc.load(tmp_path / "missing.cnn")
    with pytest.raises(FileNotFoundError):
        cc.load(str(tmp_path / "no-such-dir" / "model.cnn"))


# ---------------------------------------------------------------------------
# Layouts and dtypes: same results as a contiguous float32 copy
# ---------------------------------------------------------------------------


def _layouts(rng):
    """(name, x) with x equal in value to base but not a contiguous float32 array."""
    big = rng.standard_normal((8, 4, 12, 12)).astype(np.float32)
    base = np.ascontiguousarray(big[::2, 1:3, ::2, 1::2])       # (4, 2, 6, 6)
    nhwc = np.ascontiguousarray(base.transpose(0, 2, 3, 1))
    ints = rng.integers(-50, 50, size=base.shape)
    out = [
        ("sliced", big[::2, 1:3, ::2, 1::2], base),
        ("transposed-back", nhwc.transpose(0, 3, 1, 2), base),
        ("fortran", np.asfortranarray(base), base),
        ("reversed-strides", base[::-1][::-1], base),
        ("float64", base.astype(np.float64), base),
        ("float16", base.astype(np.float16), base.astype(np.float16).astype(np.float32)),
        ("int64", ints, ints.astype(np.float32)),
        ("uint8", ints.astype(np.uint8), ints.astype(np.uint8).astype(np.float32)),
        ("nested-list", base.tolist(), base),
    ]
    for name, x, _ in out:
        if name not in ("nested-list", "reversed-strides", "float64", "float16", "int64", "uint8"):
            assert not x.flags.c_contiguous, name
    return out


@pytest.mark.parametrize("index", range(9))
def test_layouts_and_dtypes_predict_and_train_like_float32(threads, index):
    cc.set_num_threads(2)
    name, x, ref = _layouts(np.random.default_rng(7))[index]
    assert ref.dtype == np.float32 and ref.flags.c_contiguous
    y = np.array([2, 0, 1, 1])
    a, b = small_model(seed=5), small_model(seed=5)
    np.testing.assert_array_equal(a.predict(x), b.predict(ref), err_msg=name)
    np.testing.assert_array_equal(a.predict(x, batch_size=3), b.predict(ref, batch_size=3), err_msg=name)
    for _ in range(2):
        assert a.train_on_batch(x, y) == b.train_on_batch(ref, y), name
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb, err_msg=name)
    assert a.evaluate(x, y) == b.evaluate(ref, y)
    # fit converts once and gathers batches from the converted copy
    ha = a.fit(x, y, epochs=2, batch_size=3, seed=1, verbose=0)
    hb = b.fit(ref, y, epochs=2, batch_size=3, seed=1, verbose=0)
    assert ha.history["loss"] == hb.history["loss"]
    # the caller's array is never modified
    if isinstance(x, np.ndarray):
        assert x.shape == (4, 2, 6, 6)


@pytest.mark.parametrize("y", [
    np.array([2, 0, 1, 1], dtype=np.int32),
    np.array([2, 0, 1, 1], dtype=np.uint8),
    np.array([2.0, 0.0, 1.0, 1.0]),
    np.array([[2], [0], [1], [1]]),
    np.array([9, 2, 9, 0, 9, 1, 9, 1])[1::2],
    [2, 0, 1, 1],
    (2, 0, 1, 1),
], ids=["int32", "uint8", "float-integral", "column", "strided", "list", "tuple"])
def test_label_dtypes_train_like_int64(data, y):
    x, _ = data
    a, b = small_model(seed=9), small_model(seed=9)
    ref = np.array([2, 0, 1, 1], dtype=np.int64)
    assert a.train_on_batch(x, y) == b.train_on_batch(x, ref)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert a.evaluate(x, y) == b.evaluate(x, ref)


def test_the_model_is_still_usable_after_errors(model, data):
    x, y = data
    for bad in (lambda: model.predict(np.zeros((4, 3, 6, 6))), lambda: model.train_on_batch(x, [0, 1, 5, 0]),
                lambda: model.train_on_batch(np.full_like(x, np.nan), y)):
        with pytest.raises(ValueError):
            bad()
    losses = [model.train_on_batch(x, y) for _ in range(5)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_unknown_layer_setting_in_an_architecture_is_an_error():
    """A config key no layer reads (a typo, or a file from a newer version) is rejected, not ignored."""
    import json

    arch = {"input_shape": [1, 4, 4], "layers": [{"type": "Flatten"}, {"type": "Dense", "units": 2, "bogus": 1}]}
    with pytest.raises(ValueError, match=r"layer 1 Dense: unknown setting 'bogus'"):
        cc._core.Model(json.dumps(arch), 0)
    arch["layers"][1].pop("bogus")
    cc._core.Model(json.dumps(arch), 0)  # the same architecture without it builds
