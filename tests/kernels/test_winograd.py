"""The Winograd F(2x2, 3x3) and F(4x4, 3x3) convolution paths
(ops/winograd.cc) on every ISA that has them, against the float64 reference
and against the im2col + GEMM path of the same ISA: forward (with bias and
fused ReLU), backward-data, backward-weight and bias gradient. Every test
that takes the `winograd` fixture runs once per tile size; a case that
would only re-run another is skipped with the reason: '4x4' where the ISA
has no F(4x4) (it falls back to F(2x2)), both on an ISA without Winograd
(the GEMM runs). test_fallbacks_are_exact checks those fallbacks, bit for
bit. Ragged sizes: channel counts that are not multiples of the vector
width, odd output sizes (half-empty edge tiles), tile rows shorter and
longer than a 16-tile register, padding 0, 1 and 2, batches that split
unevenly over threads."""

import numpy as np
import pytest

import cpucnn as cc
import reference as ref
from harness import assert_close, seeded_rng

K = cc._core.kernels

# (n, cin, cout, h, w, padding)
SHAPES = [
    (2, 8, 8, 6, 6, 1),
    (3, 9, 11, 7, 5, 1),  # odd output: last tile row and column half outside
    (1, 32, 32, 32, 32, 1),  # vgg_s conv2: 16 tiles per row
    (5, 16, 24, 17, 33, 0),  # 16 tiles per row + 1
    (2, 10, 8, 40, 75, 1),  # 38 tiles per row: three registers, the last ragged
    (4, 64, 128, 8, 8, 1),  # vgg_s conv5: 4 tiles per row
    (1, 8, 9, 3, 3, 2),  # output larger than the input
    (3, 12, 8, 9, 4, 0),  # one tile per row
    (7, 20, 17, 11, 13, 1),
    (1, 8, 8, 6, 2058, 1),  # F(4x4): 515 tiles per row, over the 512 columns an F(4x4) kernel pass holds
]


def _has_f4(isa):
    return isa in ("avx2", "avx512")


def _applies(isa):
    return dict(cc.cpu_info()["kernels"]).get("conv2d_winograd") is not None


def _skip_without_winograd(isa, would):
    if not _applies(isa):
        pytest.skip(f"{isa} has no Winograd kernel: the test would {would} (test_fallbacks_are_exact checks that)")


@pytest.fixture
def settings():
    """Restores the Winograd mode and tile a test changes."""
    before, tile = K.conv2d_winograd(), K.conv2d_winograd_tile()
    yield
    K.set_conv2d_winograd(before)
    K.set_conv2d_winograd_tile(tile)


@pytest.fixture(params=["2x2", "4x4"])
def winograd(request, isa, settings):
    """Winograd forced ('always') with one tile size; the cases that would
    only re-run another are skipped, with the reason."""
    _skip_without_winograd(isa, "run the GEMM path, not Winograd")
    if request.param == "4x4" and not _has_f4(isa):
        pytest.skip(f"{isa} has no F(4x4): '4x4' would re-run the '2x2' case as F(2x2) "
                    "(test_fallbacks_are_exact checks that)")
    K.set_conv2d_winograd("always")
    K.set_conv2d_winograd_tile(request.param)
    return request.param


def _case(shape):
    n, cin, cout, h, w, p = shape
    rng = seeded_rng("winograd", shape)
    x = rng.standard_normal((n, cin, h, w)).astype(np.float32)
    wt = (rng.standard_normal((cout, cin, 3, 3)) / np.sqrt(9 * cin)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    ho, wo = h + 2 * p - 2, w + 2 * p - 2
    dy = rng.standard_normal((n, cout, ho, wo)).astype(np.float32)
    return x, wt, b, dy, p


@pytest.mark.parametrize("nt", [1, 2])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_winograd_matches_reference(isa, threads, winograd, shape, nt):
    cc.set_num_threads(nt)
    x, wt, b, dy, p = _case(shape)
    want_y = ref.conv2d_forward(x, wt, b, padding=p)
    want_dx, want_dw, want_db = ref.conv2d_backward(x, wt, dy, padding=p)
    y = K.conv2d_forward(x, wt, b, padding=(p, p))
    assert_close(y, want_y, f"{isa} forward {shape}")
    y_relu = K.conv2d_forward(x, wt, b, padding=(p, p), relu=True)
    assert_close(y_relu, np.maximum(want_y, 0.0), f"{isa} forward+relu {shape}")
    dx, dw, db = K.conv2d_backward(x, wt, dy, padding=(p, p))
    assert_close(dx, want_dx, f"{isa} dx {shape}")
    assert_close(dw, want_dw, f"{isa} dw {shape}")
    assert_close(db, want_db, f"{isa} db {shape}")
    none, dw2, db2 = K.conv2d_backward(x, wt, dy, padding=(p, p), need_dx=False)
    assert none is None
    np.testing.assert_array_equal(dw2, dw)
    np.testing.assert_array_equal(db2, db)
    dx3, none_w, none_b = K.conv2d_backward(x, wt, dy, padding=(p, p), need_dw=False)  # a frozen layer
    assert none_w is None and none_b is None
    assert_close(dx3, want_dx, f"{isa} dx without dw {shape}")


@pytest.mark.parametrize("shape", SHAPES[:6], ids=lambda s: "x".join(map(str, s)))
def test_winograd_agrees_with_gemm_path(isa, one_thread, winograd, shape):
    x, wt, b, dy, p = _case(shape)
    got = [K.conv2d_forward(x, wt, b, padding=(p, p)), *K.conv2d_backward(x, wt, dy, padding=(p, p))]
    K.set_conv2d_winograd("never")
    want = [K.conv2d_forward(x, wt, b, padding=(p, p)), *K.conv2d_backward(x, wt, dy, padding=(p, p))]
    for what, g, e in zip(("y", "dx", "dw", "db"), got, want):
        assert_close(g, e, f"{isa} {what} {shape}")
    # the path really differs: Winograd rounds differently from the GEMM
    assert not np.array_equal(got[0], want[0]), "the Winograd path did not run"


def test_winograd_is_listed_per_isa(isa):
    listed = _applies(isa)
    assert listed == (isa in ("avx2", "avx512")), cc.cpu_info()["kernels"]
    note = dict(cc.cpu_info()["kernels"]).get("conv2d_winograd") or ""
    assert ("F(4x4)" in note) == _has_f4(isa), note


@pytest.mark.parametrize("shape", [SHAPES[2], SHAPES[8]], ids=lambda s: "x".join(map(str, s)))
def test_winograd_forward_is_independent_of_threads_and_backward_reproducible(isa, threads, winograd, shape):
    x, wt, b, dy, p = _case(shape)
    cc.set_num_threads(1)
    y1 = K.conv2d_forward(x, wt, b, padding=(p, p), relu=True)
    cc.set_num_threads(2)
    y2 = K.conv2d_forward(x, wt, b, padding=(p, p), relu=True)
    np.testing.assert_array_equal(y1, y2)
    first = K.conv2d_backward(x, wt, dy, padding=(p, p))
    again = K.conv2d_backward(x, wt, dy, padding=(p, p))
    for a, e in zip(first, again):
        np.testing.assert_array_equal(a, e)


def test_winograd_keeps_nan_within_its_tiles(isa, one_thread, winograd):
    # A NaN input reaches every output the GEMM path says it reaches; the
    # transforms spread it at most over the 2x2 output tiles whose input
    # patch holds it (as any Winograd does: NaN * 0 is NaN), never further.
    x, wt, b, dy, p = _case(SHAPES[0])
    x[1, 3, 2, 4] = np.nan
    y = K.conv2d_forward(x, wt, b, padding=(p, p))
    K.set_conv2d_winograd("never")
    y_gemm = K.conv2d_forward(x, wt, b, padding=(p, p))
    assert (np.isnan(y) >= np.isnan(y_gemm)).all()
    assert not np.isnan(y[0]).any()
    rows, cols = np.nonzero(np.isnan(y[1]).any(axis=0))
    if winograd == "4x4":
        # input (2, 4) is in the patches of tiles (0, 0) and (0, 1): output rows 0..3
        assert rows.max() <= 3 and np.isnan(y[1][:, 4:, :]).sum() == 0
    else:
        assert rows.max() <= 3 and cols.min() >= 2  # tiles (0..1, 2..3) x (2..3, 4..5)


def test_auto_mode_uses_winograd_only_where_it_pays(isa, one_thread):
    assert K.conv2d_winograd() == "auto"  # the default
    _skip_without_winograd(isa, "compare the GEMM path ('auto') with itself ('never')")
    small = _case(SHAPES[0])  # 18 tiles: the weight transform would cost more than it saves
    big = _case((2, 16, 16, 32, 32, 1))  # 512 tiles
    try:
        outs = {}
        for mode in ("auto", "never"):
            K.set_conv2d_winograd(mode)
            outs[mode] = [K.conv2d_forward(x, wt, b, padding=(p, p)) for x, wt, b, _, p in (small, big)]
    finally:
        K.set_conv2d_winograd("auto")
    np.testing.assert_array_equal(outs["auto"][0], outs["never"][0])
    assert not np.array_equal(outs["auto"][1], outs["never"][1])
    assert_close(outs["auto"][1], outs["never"][1], f"{isa} auto vs never")


def test_winograd_mode_is_checked():
    with pytest.raises(ValueError, match="'auto', 'always' or 'never'"):
        K.set_conv2d_winograd("sometimes")
    assert K.conv2d_winograd() == "auto"


def test_winograd_tile_setting_is_checked():
    with pytest.raises(ValueError, match="'auto', '2x2' or '4x4'"):
        K.set_conv2d_winograd_tile("3x3")
    assert K.conv2d_winograd_tile() == "auto"


@pytest.mark.parametrize(
    "shape,f4",
    [
        ((2, 16, 16, 16, 16, 1), {"avx2", "avx512"}),
        ((4, 16, 16, 8, 8, 1), {"avx2", "avx512"}),  # 16 tiles of 4x4
        ((3, 16, 16, 8, 8, 1), {"avx2"}),  # 12
        ((2, 16, 16, 8, 8, 1), {"avx2"}),  # 8
        ((1, 16, 16, 8, 8, 1), set()),  # 4
        ((2, 16, 16, 7, 9, 1), set()),
        ((9, 16, 16, 7, 9, 1), set()),
    ],
    ids=["16x16", "8x8x4", "8x8x3", "8x8x2", "8x8x1", "7x9", "7x9x9"],
)
def test_auto_tile_is_f4_on_maps_of_8x8_or_more(isa, one_thread, settings, shape, f4):
    # 'auto' runs F(4x4) on maps of >= 8x8 outputs with a transform
    # register's worth of its tiles per thread (16 on avx512, 8 on avx2),
    # else F(2x2): bit for bit one of the two forced settings, and the two
    # differ.
    if not _has_f4(isa):
        pytest.skip(f"{isa} has no F(4x4): 'auto', '2x2' and '4x4' would all run one path "
                    "(test_fallbacks_are_exact checks that)")
    K.set_conv2d_winograd("always")
    got = _tiles(_case(shape), ("auto", "2x2", "4x4"))
    for a, e in zip(got["auto"], got["4x4" if isa in f4 else "2x2"]):
        np.testing.assert_array_equal(a, e)
    assert not np.array_equal(got["2x2"][0], got["4x4"][0]), "F(4x4) did not run"


def _tiles(case, tiles):
    """{tile: [y, dx, dw, db]} of one case for each tile setting."""
    x, wt, b, dy, p = case
    got = {}
    for tile in tiles:
        K.set_conv2d_winograd_tile(tile)
        got[tile] = [K.conv2d_forward(x, wt, b, padding=(p, p)), *K.conv2d_backward(x, wt, dy, padding=(p, p))]
    return got


def test_fallbacks_are_exact(isa, one_thread, settings):
    """Where the ISA lacks a path, asking for it runs the one it falls back
    to, bit for bit (so the cases skipped for that reason would have re-run
    another): without F(4x4), '4x4' and 'auto' are F(2x2); without Winograd,
    'always' and 'auto' are the GEMM. On an F(4x4)-sized case (16x16 maps)."""
    if _has_f4(isa):
        pytest.skip(f"{isa} has Winograd F(2x2) and F(4x4): nothing falls back")
    case = _case((2, 16, 16, 16, 16, 1))
    K.set_conv2d_winograd("never")
    gemm = _tiles(case, ("2x2",))["2x2"]
    if _applies(isa):
        K.set_conv2d_winograd("always")
        got = _tiles(case, ("2x2", "4x4", "auto"))
        assert not np.array_equal(got["2x2"][0], gemm[0]), "F(2x2) did not run"
        want, what = got.pop("2x2"), "F(2x2)"
    else:
        got = {}
        for mode in ("always", "auto"):
            K.set_conv2d_winograd(mode)
            got.update({f"{mode} {t}": v for t, v in _tiles(case, ("2x2", "4x4", "auto")).items()})
        want, what = gemm, "the GEMM"
    for setting, outs in got.items():
        for name, a, e in zip(("y", "dx", "dw", "db"), outs, want):
            np.testing.assert_array_equal(a, e, err_msg=f"{isa}: {setting} {name} is not {what}")
