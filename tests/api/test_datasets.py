"""Tests for cpucnn.datasets (IDX reader and (Fashion-)MNIST loaders).

The module is loaded straight from its source file so these tests run
without the compiled cpucnn package.
"""

import gzip
import importlib.util
import struct
from pathlib import Path

import numpy as np
import pytest

_SRC = Path(__file__).resolve().parents[2] / "src" / "cpucnn" / "datasets.py"
_SYSTEM_FASHION = Path("/usr/share/datasets/fashion-mnist")

_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}
_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


@pytest.fixture(scope="module")
def ds():
    spec = importlib.util.spec_from_file_location("cpucnn_datasets_under_test", _SRC)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def idx_bytes(arr):
    """Encode an array in the IDX format (hand-rolled, independent of the module)."""
    arr = np.asarray(arr)
    header = bytes([0, 0, _CODES[arr.dtype], arr.ndim])
    header += b"".join(struct.pack(">I", d) for d in arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write_idx(path, arr, gz=False):
    data = idx_bytes(arr)
    if gz:
        data = gzip.compress(data)
    Path(path).write_bytes(data)
    return path


def make_dataset(folder, n_train=5, n_test=3, gz=False, seed=0):
    """Write a tiny 4-file MNIST-style dataset; return the arrays written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    # Make sure both ends of the range occur so scaling is checked exactly.
    arrays["train-images-idx3-ubyte"][0, 0, 0] = 0
    arrays["train-images-idx3-ubyte"][0, 0, 1] = 255
    for name, arr in arrays.items():
        write_idx(folder / (name + (".gz" if gz else "")), arr, gz=gz)
    return arrays


# ---------------------------------------------------------------- load_idx


ROUND_TRIP_ARRAYS = {
    "uint8_images": np.arange(2 * 28 * 28, dtype=np.int64).astype(np.uint8).reshape(2, 28, 28),
    "uint8_labels_1d": np.array([3, 1, 4, 1, 5, 9, 2, 6], dtype=np.uint8),
    "int8": np.array([[-128, -1, 0], [1, 64, 127]], dtype=np.int8),
    "int16": np.array([-32768, -2, 0, 258, 32767], dtype=np.int16),
    "int32": np.array([[-(2**31), -70000], [123456789, 2**31 - 1]], dtype=np.int32).reshape(2, 1, 2),
    "float32": np.array([[0.0, -1.5, 3.25e-7], [np.inf, 1e30, -0.0]], dtype=np.float32),
    "float64": np.linspace(-1, 1, 24).reshape(2, 3, 4),
    "empty": np.zeros((0, 28, 28), dtype=np.uint8),
}


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("key", sorted(ROUND_TRIP_ARRAYS))
def test_load_idx_round_trip(ds, tmp_path, key, gz):
    arr = ROUND_TRIP_ARRAYS[key]
    path = write_idx(tmp_path / "data.idx", arr, gz=gz)
    out = ds.load_idx(path)
    assert out.dtype == arr.dtype
    assert out.dtype.isnative
    assert out.shape == arr.shape
    np.testing.assert_array_equal(out, arr)
    assert out.tobytes() == arr.tobytes()  # bit-exact, incl. -0.0
    assert out.flags.writeable


def test_load_idx_accepts_str_path_and_max_dims(ds, tmp_path):
    arr = np.arange(2**8, dtype=np.int16).reshape((2,) * 8)
    path = write_idx(tmp_path / "eight.idx", arr)
    out = ds.load_idx(str(path))
    assert out.shape == (2,) * 8
    np.testing.assert_array_equal(out, arr)


def test_load_idx_gzip_detected_by_magic_not_name(ds, tmp_path):
    arr = np.arange(12, dtype=np.int32).reshape(3, 4)
    path = write_idx(tmp_path / "no-extension-idx", arr, gz=True)
    np.testing.assert_array_equal(ds.load_idx(path), arr)
    # and a plain file with a misleading .gz name is read as plain
    path2 = write_idx(tmp_path / "plain.gz", arr, gz=False)
    np.testing.assert_array_equal(ds.load_idx(path2), arr)


def _check_value_error(ds, path, *fragments):
    with pytest.raises(ValueError) as info:
        ds.load_idx(path)
    msg = str(info.value)
    assert path.name in msg
    for frag in fragments:
        assert frag in msg, (frag, msg)
    return msg


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize(
    "first_bytes", [b"\x01\x00", b"\x00\x01", b"\xff\xff"], ids=["b0", "b1", "both"]
)
def test_load_idx_bad_magic(ds, tmp_path, first_bytes, gz):
    good = idx_bytes(np.arange(4, dtype=np.uint8))
    data = first_bytes + good[2:]
    if gz:
        data = gzip.compress(data)
    path = tmp_path / "badmagic.idx"
    path.write_bytes(data)
    _check_value_error(ds, path)


@pytest.mark.parametrize("code", [0x00, 0x07, 0x0A, 0x0F, 0xFF])
def test_load_idx_unknown_dtype(ds, tmp_path, code):
    good = idx_bytes(np.arange(4, dtype=np.uint8))
    path = tmp_path / "badtype.idx"
    path.write_bytes(good[:2] + bytes([code]) + good[3:])
    _check_value_error(ds, path)


@pytest.mark.parametrize("ndim", [0, 9, 255])
def test_load_idx_bad_ndim(ds, tmp_path, ndim):
    path = tmp_path / "badndim.idx"
    path.write_bytes(bytes([0, 0, 0x08, ndim]) + struct.pack(">I", 1) * ndim + b"\x00")
    _check_value_error(ds, path)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
def test_load_idx_truncated_everywhere(ds, tmp_path, gz):
    arr = np.arange(3 * 4 * 5, dtype=np.int32).reshape(3, 4, 5)
    good = idx_bytes(arr)
    header = 4 + 4 * 3
    # empty file, inside magic, inside dims, right after header, mid-data, last byte
    cuts = [0, 1, 3, 4, 6, header - 1, header, header + 1, header + 17, len(good) - 1]
    for cut in cuts:
        data = good[:cut]
        path = tmp_path / f"trunc{cut}.idx"
        path.write_bytes(gzip.compress(data) if gz else data)
        msg = _check_value_error(ds, path)
        if cut >= header:
            expected = arr.nbytes
            assert str(expected) in msg and str(cut - header) in msg, msg


@pytest.mark.parametrize("extra", [1, 3, 1000])
def test_load_idx_trailing_bytes(ds, tmp_path, extra):
    arr = np.arange(10, dtype=np.uint8)
    path = tmp_path / "trailing.idx"
    path.write_bytes(idx_bytes(arr) + b"\x00" * extra)
    _check_value_error(ds, path, str(arr.nbytes), str(arr.nbytes + extra))


def test_load_idx_trailing_bytes_gzip(ds, tmp_path):
    arr = np.arange(6, dtype=np.float32)
    path = tmp_path / "trailing.idx.gz"
    path.write_bytes(gzip.compress(idx_bytes(arr) + b"junk"))
    _check_value_error(ds, path, "24", "28")


def test_load_idx_huge_dims_do_not_overflow(ds, tmp_path):
    path = tmp_path / "huge.idx"
    path.write_bytes(bytes([0, 0, 0x0E, 3]) + struct.pack(">III", 2**32 - 1, 2**32 - 1, 2**32 - 1) + b"\x00" * 8)
    _check_value_error(ds, path)


@pytest.mark.parametrize("kind", ["truncated", "flipped_body", "bad_crc", "magic_only", "garbage"])
def test_load_idx_broken_gzip(ds, tmp_path, kind):
    comp = bytearray(gzip.compress(idx_bytes(np.arange(200, dtype=np.uint8) % 7)))
    if kind == "truncated":
        data = bytes(comp[: len(comp) // 2])
    elif kind == "flipped_body":
        for i in range(12, len(comp) - 8):
            comp[i] ^= 0x5A
        data = bytes(comp)
    elif kind == "bad_crc":
        comp[-8] ^= 0xFF
        data = bytes(comp)
    elif kind == "magic_only":
        data = b"\x1f\x8b"
    else:
        data = b"\x1f\x8b" + bytes(range(256)) * 3
    path = tmp_path / "broken.gz"
    path.write_bytes(data)
    _check_value_error(ds, path)


def test_load_idx_missing_file(ds, tmp_path):
    with pytest.raises(FileNotFoundError):
        ds.load_idx(tmp_path / "does-not-exist")


# ------------------------------------------------------------ (Fashion-)MNIST


def _check_loaded(result, arrays, n_train, n_test):
    (x_train, y_train), (x_test, y_test) = result
    for x, y, n, img_key, lab_key in (
        (x_train, y_train, n_train, "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        (x_test, y_test, n_test, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    ):
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape == (n, 1, 28, 28) and y.shape == (n,)
        assert x.min() >= 0.0 and x.max() <= 1.0
        np.testing.assert_allclose(x[:, 0] * 255.0, arrays[img_key], atol=1e-4)
        np.testing.assert_array_equal(y, arrays[lab_key])
    assert x_train[0, 0, 0, 0] == 0.0 and x_train[0, 0, 0, 1] == 1.0


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gzip"])
@pytest.mark.parametrize("loader", ["load_fashion_mnist", "load_mnist"])
def test_load_from_root(ds, tmp_path, loader, gz):
    arrays = make_dataset(tmp_path, 5, 3, gz=gz)
    _check_loaded(getattr(ds, loader)(root=tmp_path), arrays, 5, 3)
    _check_loaded(getattr(ds, loader)(root=str(tmp_path)), arrays, 5, 3)


def test_load_from_root_mixed_plain_and_gz(ds, tmp_path):
    arrays = make_dataset(tmp_path, 4, 2)
    for name in ("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        p = tmp_path / name
        p.with_name(name + ".gz").write_bytes(gzip.compress(p.read_bytes()))
        p.unlink()
    _check_loaded(ds.load_fashion_mnist(root=tmp_path), arrays, 4, 2)


@pytest.fixture
def isolated_env(monkeypatch, tmp_path):
    """Empty HOME and no CPUCNN_DATA (the system folder is patched separately)."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("CPUCNN_DATA", raising=False)
    return home


@pytest.fixture
def no_system_dir(ds, monkeypatch, tmp_path):
    monkeypatch.setattr(ds, "_SYSTEM_DIR", str(tmp_path / "no-system"))


@pytest.mark.parametrize(
    "loader,name", [("load_fashion_mnist", "fashion-mnist"), ("load_mnist", "mnist")]
)
def test_search_cpucnn_data(ds, tmp_path, monkeypatch, isolated_env, no_system_dir, loader, name):
    data = tmp_path / "data"
    arrays = make_dataset(data / name, 5, 3, gz=True)
    monkeypatch.setenv("CPUCNN_DATA", str(data))
    _check_loaded(getattr(ds, loader)(), arrays, 5, 3)


def test_search_home_and_order(ds, tmp_path, monkeypatch, isolated_env, no_system_dir):
    home = isolated_env
    home_arrays = make_dataset(home / ".cpucnn" / "datasets" / "fashion-mnist", 4, 2, seed=1)
    _check_loaded(ds.load_fashion_mnist(), home_arrays, 4, 2)

    # $CPUCNN_DATA comes before ~/.cpucnn/datasets ...
    data = tmp_path / "data"
    env_arrays = make_dataset(data / "fashion-mnist", 5, 3, seed=2)
    monkeypatch.setenv("CPUCNN_DATA", str(data))
    _check_loaded(ds.load_fashion_mnist(), env_arrays, 5, 3)

    # ... but an incomplete folder there is skipped in favour of the next one.
    (data / "fashion-mnist" / "t10k-labels-idx1-ubyte").unlink()
    _check_loaded(ds.load_fashion_mnist(), home_arrays, 4, 2)


def test_search_system_dir(ds, tmp_path, monkeypatch, isolated_env):
    system = tmp_path / "system"
    monkeypatch.setattr(ds, "_SYSTEM_DIR", str(system))
    arrays = make_dataset(system / "fashion-mnist", 3, 2, gz=True)  # Debian layout: *.gz
    _check_loaded(ds.load_fashion_mnist(), arrays, 3, 2)


def test_root_overrides_search(ds, tmp_path, monkeypatch, isolated_env, no_system_dir):
    data = tmp_path / "data"
    make_dataset(data / "mnist", 5, 3, seed=3)
    monkeypatch.setenv("CPUCNN_DATA", str(data))
    with pytest.raises(FileNotFoundError):
        ds.load_mnist(root=tmp_path / "empty")


@pytest.mark.parametrize(
    "which,n_images,n_labels",
    [("train", 5, 4), ("train", 5, 6), ("t10k", 3, 2)],
)
def test_count_mismatch(ds, tmp_path, which, n_images, n_labels):
    make_dataset(tmp_path, 5, 3)
    write_idx(tmp_path / f"{which}-labels-idx1-ubyte", np.zeros(n_labels, dtype=np.uint8))
    write_idx(tmp_path / f"{which}-images-idx3-ubyte", np.zeros((n_images, 28, 28), dtype=np.uint8))
    with pytest.raises(ValueError, match="mismatch"):
        ds.load_fashion_mnist(root=tmp_path)


@pytest.mark.parametrize(
    "images", [np.zeros((2, 28, 27), np.uint8), np.zeros((2, 32, 32), np.uint8),
               np.zeros((2, 784), np.uint8), np.zeros((2, 1, 28, 28), np.uint8)],
    ids=["28x27", "32x32", "flat", "4d"],
)
def test_bad_image_size(ds, tmp_path, images):
    make_dataset(tmp_path, 2, 3)
    write_idx(tmp_path / "train-images-idx3-ubyte", images)
    with pytest.raises(ValueError, match="28"):
        ds.load_mnist(root=tmp_path)


def test_corrupt_file_in_dataset(ds, tmp_path):
    make_dataset(tmp_path, 5, 3)
    p = tmp_path / "t10k-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte"):
        ds.load_fashion_mnist(root=tmp_path)


@pytest.mark.parametrize(
    "loader,name", [("load_fashion_mnist", "fashion-mnist"), ("load_mnist", "mnist")]
)
def test_nothing_found(ds, tmp_path, monkeypatch, isolated_env, loader, name):
    system = tmp_path / "system"
    monkeypatch.setattr(ds, "_SYSTEM_DIR", str(system))
    data = tmp_path / "data"
    # a partial dataset must not count as found
    make_dataset(data / name, 2, 2)
    (data / name / "train-images-idx3-ubyte").unlink()
    monkeypatch.setenv("CPUCNN_DATA", str(data))
    with pytest.raises(FileNotFoundError) as info:
        getattr(ds, loader)()
    msg = str(info.value)
    for f in _FILES:
        assert f in msg
    for place in (data / name, isolated_env / ".cpucnn" / "datasets" / name, system / name):
        assert str(place) in msg, (place, msg)
    assert "CPUCNN_DATA" in msg
    if name == "fashion-mnist":
        assert "apt-get install dataset-fashion-mnist" in msg
        assert "~/.cpucnn/datasets/fashion-mnist" in msg


def test_nothing_found_without_env_mentions_unset(ds, tmp_path, isolated_env, no_system_dir):
    with pytest.raises(FileNotFoundError) as info:
        ds.load_mnist()
    msg = str(info.value)
    assert "CPUCNN_DATA" in msg
    assert str(isolated_env / ".cpucnn" / "datasets" / "mnist") in msg


def test_nothing_found_with_root(ds, tmp_path):
    root = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as info:
        ds.load_fashion_mnist(root=root)
    assert str(root) in str(info.value)


def test_public_api(ds):
    assert set(ds.__all__) == {"load_idx", "load_fashion_mnist", "load_mnist"}
    assert ds.__doc__
    for name in ds.__all__:
        assert getattr(ds, name).__doc__


# ----------------------------------------------------------- real data


@pytest.mark.skipif(not _SYSTEM_FASHION.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist(ds):
    (x_train, y_train), (x_test, y_test) = ds.load_fashion_mnist(root=_SYSTEM_FASHION)
    assert x_train.shape == (60000, 1, 28, 28) and y_train.shape == (60000,)
    assert x_test.shape == (10000, 1, 28, 28) and y_test.shape == (10000,)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0
    assert x_train.max() == 1.0
    assert set(np.unique(y_train)) == set(range(10))
    assert set(np.unique(y_test)) == set(range(10))
    # Fashion-MNIST is balanced: 6000 / 1000 per class.
    assert np.all(np.bincount(y_train) == 6000)
    assert np.all(np.bincount(y_test) == 1000)


@pytest.mark.skipif(not _SYSTEM_FASHION.is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_default_search(ds, monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CPUCNN_DATA", raising=False)
    (x_train, y_train), (x_test, y_test) = ds.load_fashion_mnist()
    assert len(x_train) == 60000 and len(x_test) == 10000
