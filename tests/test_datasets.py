"""trtverify.datasets: the digits split, and CIFAR-10 read from a local archive without ever running pickled code.

The CIFAR-10 archives here are built in tmp_path with the real layout (cifar-10-batches-py/data_batch_1..5 and
test_batch, each a pickled dict with b"data" uint8 (N, 3072) in R, G, B planes and b"labels"). The genuine batches
are Python 2 pickles, so the builder writes strings the way Python 2 did (as byte strings) and names numpy's
``numpy.core.multiarray._reconstruct``, as the real file does.
"""

from __future__ import annotations

import io
import math
import os
import pickle
import struct
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from trtverify import datasets
from trtverify.datasets import CIFAR_CLASSES, read_cifar10_archive
from trtverify.errors import UserError

BATCHES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


# --- digits ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def digits_full() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images, d.target


def test_digits_shapes_dtypes_and_range(digits_full) -> None:
    images, target = digits_full
    split = datasets.load("digits", {"source": "digits", "test_fraction": 0.25}, seed=0)
    n = len(target)
    n_test = math.ceil(0.25 * n)
    assert split.x_train.shape == (n - n_test, 8, 8, 1) and split.x_test.shape == (n_test, 8, 8, 1)
    assert split.x_train.dtype == np.float32 and split.x_test.dtype == np.float32
    assert split.y_train.dtype == np.int64 and split.y_test.dtype == np.int64
    assert split.y_train.shape == (n - n_test,) and split.y_test.shape == (n_test,)
    for x in (split.x_train, split.x_test):
        assert x.min() == 0.0 and x.max() == 1.0              # 0..16 scaled by 1/16, both ends present
        assert np.array_equal(x * 16, np.round(x * 16))      # exactly the 17 grey levels
    assert split.class_names == tuple(str(i) for i in range(10))
    for y in (split.y_train, split.y_test):
        assert set(np.unique(y)) == set(range(10))           # stratified: every class on both sides
    # the two halves together are the whole dataset, image for image, and each image keeps its label
    both_x = np.concatenate([split.x_train, split.x_test])[..., 0] * 16
    both_y = np.concatenate([split.y_train, split.y_test])
    key = lambda x, y: sorted(zip(y.tolist(), x.reshape(len(x), -1).astype(int).tolist()))  # noqa: E731
    assert key(both_x, both_y) == key(images, target)
    # class proportions follow the full set (stratify) within one sample per class
    assert np.all(np.abs(np.bincount(split.y_test, minlength=10) - np.bincount(target) * 0.25) <= 1)


def test_digits_split_is_deterministic_per_seed() -> None:
    a = datasets.load("digits", {"test_fraction": 0.25}, seed=1)
    b = datasets.load("digits", {"test_fraction": 0.25}, seed=1)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    c = datasets.load("digits", {"test_fraction": 0.25}, seed=2)
    assert c.x_test.shape == a.x_test.shape
    assert not np.array_equal(a.x_test, c.x_test)
    assert not np.array_equal(a.y_test, c.y_test)


@pytest.mark.parametrize("fraction", [0.1, 0.5])
def test_digits_test_fraction(fraction) -> None:
    split = datasets.load("digits", {"test_fraction": fraction}, seed=0)
    total = len(split.x_train) + len(split.x_test)
    assert total == 1797
    assert len(split.x_test) == math.ceil(fraction * total)


def test_unknown_source_and_cifar_without_archive(tmp_path) -> None:
    with pytest.raises(UserError, match="unknown dataset source 'mnist'; available: digits, cifar10"):
        datasets.load("mnist", {}, seed=0)
    with pytest.raises(UserError, match="needs either 'archive: path/to/cifar-10-python.tar.gz' or 'download: true'"):
        datasets.load("cifar10", {"archive": None}, seed=0)
    with pytest.raises(UserError, match=r"CIFAR-10 archive .*absent\.tar\.gz does not exist"):
        datasets.load("cifar10", {"archive": str(tmp_path / "absent.tar.gz")}, seed=0)


# --- a fake CIFAR-10 archive -----------------------------------------------------------------------------------------
class _Py2Pickler(pickle._Pickler):  # type: ignore[name-defined]
    """Writes str and bytes as Python 2 byte strings (SHORT_BINSTRING/BINSTRING), as the genuine batches hold them."""

    dispatch = dict(pickle._Pickler.dispatch)  # type: ignore[attr-defined]

    def _save_py2_str(self, obj: str | bytes) -> None:
        raw = obj.encode("latin-1") if isinstance(obj, str) else obj
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[str] = _save_py2_str
    dispatch[bytes] = _save_py2_str


def py2_pickle(obj: Any) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue().replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")


def batch(data: np.ndarray, labels: list[int], name: str = "batch") -> bytes:
    return py2_pickle({b"batch_label": name, b"labels": labels, b"data": data,
                       b"filenames": [f"img_{i}.png" for i in range(len(labels))]})


def write_archive(path: Path, members: dict[str, bytes], *, prefix: str = "cifar-10-batches-py/") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, payload in members.items():
            info = tarfile.TarInfo(prefix + name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    return path


def planes(r: int, g: int, b: int) -> np.ndarray:
    """One image (3072 values) whose R, G and B planes are the constants r, g, b."""
    return np.concatenate([np.full(1024, v, dtype=np.uint8) for v in (r, g, b)])


def sample_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


@pytest.fixture
def fake_cifar(tmp_path) -> tuple[Path, dict[str, tuple[np.ndarray, list[int]]]]:
    contents: dict[str, tuple[np.ndarray, list[int]]] = {}
    for i, name in enumerate(BATCHES):
        n = 2 + i % 3                                   # uneven batch sizes: 2, 3, 4, 2, 3 and 4
        data = sample_images(n, seed=i)
        contents[name] = (data, [(i + k) % 10 for k in range(n)])
    data, labels = contents["data_batch_1"]
    data[0] = planes(10, 20, 30)                         # first training image: constant planes
    row_major = (np.arange(1024) * 7 % 256).astype(np.uint8)   # pixel (i, j) of R = (32 i + j) * 7 mod 256
    data[1] = np.concatenate([row_major, 255 - row_major, np.zeros(1024, np.uint8)])
    members = {name: batch(d, lab, name) for name, (d, lab) in contents.items()}
    members["batches.meta"] = py2_pickle({b"label_names": list(CIFAR_CLASSES)})
    return write_archive(tmp_path / "cifar-10-python.tar.gz", members), contents


def test_fake_batch_is_a_python2_style_pickle() -> None:
    """The builder really writes what the genuine file holds: byte strings and numpy.core's _reconstruct."""
    import pickletools

    raw = batch(planes(1, 2, 3)[None], [4])
    ops = {op.name for op, _, _ in pickletools.genops(raw)}
    assert "SHORT_BINSTRING" in ops and "BINSTRING" in ops    # b"data" raw bytes are 3072 long
    assert not ops & {"BINUNICODE", "SHORT_BINUNICODE", "BINBYTES", "SHORT_BINBYTES"}
    globals_ = [arg for op, arg, _ in pickletools.genops(raw) if op.name == "GLOBAL"]
    assert "numpy.core.multiarray _reconstruct" in globals_ and "numpy ndarray" in globals_


def test_cifar_archive_loads(fake_cifar) -> None:
    path, contents = fake_cifar
    (x_tr, y_tr), (x_te, y_te) = read_cifar10_archive(path)
    n_train = sum(len(contents[f"data_batch_{i}"][1]) for i in range(1, 6))
    assert x_tr.shape == (n_train, 32, 32, 3) and x_tr.dtype == np.uint8
    assert x_te.shape == (len(contents["test_batch"][1]), 32, 32, 3)
    assert y_tr.dtype == np.int64 and y_te.dtype == np.int64
    # batches in order 1..5, labels kept with their images
    assert y_tr.tolist() == sum((contents[f"data_batch_{i}"][1] for i in range(1, 6)), [])
    assert y_te.tolist() == contents["test_batch"][1]
    # channel order: HWC with R, G, B last
    assert np.all(x_tr[0, :, :, 0] == 10) and np.all(x_tr[0, :, :, 1] == 20) and np.all(x_tr[0, :, :, 2] == 30)
    # row-major planes: rows are H, columns are W (a transposed layout would put (0, 1) at (1, 0))
    expected_r = (np.arange(1024) * 7 % 256).reshape(32, 32)
    assert np.array_equal(x_tr[1, :, :, 0], expected_r)
    assert np.array_equal(x_tr[1, :, :, 1], 255 - expected_r)
    assert x_tr[1, 0, 1, 0] == 7 and x_tr[1, 1, 0, 0] == 32 * 7 % 256
    # every image, element for element, against the planes it was written from
    for k, image in enumerate(x_te):
        assert np.array_equal(image.transpose(2, 0, 1).reshape(3072), contents["test_batch"][0][k])


def test_cifar_through_load(fake_cifar) -> None:
    path, contents = fake_cifar
    split = datasets.load("cifar10", {"source": "cifar10", "archive": str(path)}, seed=0)
    assert split.class_names == CIFAR_CLASSES and len(split.class_names) == 10
    assert split.x_train.dtype == np.float32 and split.x_test.dtype == np.float32
    assert split.x_train.shape[1:] == (32, 32, 3) and len(split.x_test) == len(contents["test_batch"][1])
    assert 0.0 <= split.x_train.min() and split.x_train.max() <= 1.0
    assert np.allclose(split.x_train[0, 5, 7], np.array([10, 20, 30], np.float32) / 255, rtol=0, atol=1e-7)
    assert split.y_train.dtype == np.int64 and split.y_train.ndim == 1
    assert split.y_test.tolist() == contents["test_batch"][1]
    # the archive option wins over download: no network is ever tried when an archive is given
    again = datasets.load("cifar10", {"archive": str(path), "download": True}, seed=0)
    assert np.array_equal(again.x_train, split.x_train)


class _Mkdir:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.mkdir, (str(self.marker),))


class _System:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch '{self.marker}'",))


class _Open:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        import builtins

        return (builtins.open, (str(self.marker), "w"))


@pytest.mark.parametrize("attack, member, protocol", [
    (_System, "data_batch_1", "py2"), (_Open, "data_batch_3", 4), (_Mkdir, "test_batch", 3),
    (_System, "test_batch", 5),
])
def test_malicious_cifar_pickle_is_refused(tmp_path, attack, member, protocol) -> None:
    marker = tmp_path / "pwned"
    dump = py2_pickle if protocol == "py2" else lambda obj: pickle.dumps(obj, protocol=protocol)
    evil = dump({b"data": attack(marker), b"labels": [0]})
    # the payload is live: an ordinary unpickler runs it (against a second marker)
    control = tmp_path / "control"
    live = pickle.loads(dump({b"x": attack(control)}), encoding="bytes")
    if hasattr(live[b"x"], "close"):
        live[b"x"].close()
    assert control.exists()

    members = {name: batch(sample_images(2, i), [1, 2]) for i, name in enumerate(BATCHES)}
    members[member] = evil
    path = write_archive(tmp_path / "cifar-10-python.tar.gz", members)
    with pytest.raises(UserError) as err:
        datasets.load("cifar10", {"archive": str(path)}, seed=0)
    message = str(err.value)
    assert "\n" not in message
    assert "refusing to load it" in message and "a genuine archive does not" in message
    callee = attack(marker).__reduce__()[0]
    assert f"{callee.__module__}.{callee.__name__}" in message    # names what it would have called
    assert not marker.exists()


def test_pickle_smuggled_inside_an_array_is_refused(tmp_path) -> None:
    """An object array inside b"data" would need an arbitrary global at load time too."""
    marker = tmp_path / "pwned"
    data = np.empty(2, dtype=object)
    data[0], data[1] = _Mkdir(marker), 1
    members = {name: batch(sample_images(2, i), [1, 2]) for i, name in enumerate(BATCHES)}
    members["data_batch_2"] = py2_pickle({b"data": data, b"labels": [0, 1]})
    path = write_archive(tmp_path / "c.tar.gz", members)
    with pytest.raises(UserError, match=r"pickled posix\.mkdir, .* refusing to load it"):
        read_cifar10_archive(path)
    assert not marker.exists()


@pytest.mark.parametrize("change, expected", [
    (lambda m: m.pop("data_batch_4"), r"lacks cifar-10-batches-py/data_batch_4; is it cifar-10-python\.tar\.gz\?"),
    (lambda m: m.__setitem__("test_batch", b"\x80\x02}q\x00(U\x04data"),
     r"test_batch in the CIFAR-10 archive is malformed"),
    (lambda m: m.__setitem__("data_batch_2", batch(np.zeros((2, 3071), np.uint8), [1, 2])),
     r"data_batch_2 in the CIFAR-10 archive is malformed"),
    (lambda m: m.__setitem__("data_batch_5", py2_pickle({b"labels": [1]})),
     r"data_batch_5 in the CIFAR-10 archive is malformed"),
    (lambda m: m.__setitem__("data_batch_1", batch(sample_images(3, 0), [1, 2])),
     r"data_batch_1 in the CIFAR-10 archive has 3 images but 2 labels"),
    (lambda m: m.__setitem__("test_batch", py2_pickle([1, 2, 3])), r"test_batch in the CIFAR-10 archive is malformed"),
], ids=["missing-member", "truncated-pickle", "bad-row-size", "no-data-key", "label-count", "not-a-dict"])
def test_malformed_batches(tmp_path, change, expected) -> None:
    members = {name: batch(sample_images(2, i), [1, 2]) for i, name in enumerate(BATCHES)}
    change(members)
    path = write_archive(tmp_path / "c.tar.gz", members)
    with pytest.raises(UserError, match=expected) as err:
        read_cifar10_archive(path)
    assert "\n" not in str(err.value)


def _compressible_archive(tmp_path: Path) -> Path:
    """Smooth images, so gzip really deflates them (random bytes would be stored almost verbatim)."""
    ramp = (np.arange(3072) // 12 % 256).astype(np.uint8)
    members = {name: batch(np.stack([np.roll(ramp, k + i) for k in range(40)]), list(range(10)) * 4)
               for i, name in enumerate(BATCHES)}
    return write_archive(tmp_path / "cifar-10-python.tar.gz", members)


def test_truncated_archive(tmp_path) -> None:
    raw = _compressible_archive(tmp_path).read_bytes()
    assert read_cifar10_archive(tmp_path / "cifar-10-python.tar.gz")[1][0].shape == (40, 32, 32, 3)
    cuts = [len(raw) - 1, len(raw) - 8, len(raw) * 3 // 4, len(raw) // 2, len(raw) // 10, 30, 5, 0]
    for cut in cuts:
        path = tmp_path / f"cut{cut}.tar.gz"
        path.write_bytes(raw[:cut])
        with pytest.raises(UserError) as err:
            read_cifar10_archive(path)
        message = str(err.value)
        assert "\n" not in message, cut
        assert str(path) in message or "CIFAR-10 archive" in message, (cut, message)


def test_corrupt_archive(tmp_path) -> None:
    """Damage anywhere in the compressed stream is an error, never a silent load of damaged images."""
    raw = _compressible_archive(tmp_path).read_bytes()
    assert raw[3] == 0x08                               # FNAME only: the header ends after the stored file name,
    start = raw.index(b"\0", 10) + 1                    # which no checksum covers (damage there is harmless)
    outcomes = []
    for at in range(start, len(raw) - 8, max(1, (len(raw) - 8 - start) // 25)):
        damaged = raw[:at] + bytes(b ^ 0x5A for b in raw[at:at + 8]) + raw[at + 8:]
        path = tmp_path / "damaged.tar.gz"
        path.write_bytes(damaged)
        try:
            read_cifar10_archive(path)
            outcomes.append((at, "loaded"))
        except UserError as exc:
            assert "\n" not in str(exc)
            outcomes.append((at, "refused"))
    assert len(outcomes) >= 20
    assert [o for o in outcomes if o[1] != "refused"] == []
    (tmp_path / "junk.tar.gz").write_bytes(b"this is not gzip at all" * 10)
    with pytest.raises(UserError, match=r"junk\.tar\.gz is not a readable \.tar\.gz \(.*\); it is truncated or "
                                        r"corrupt: download cifar-10-python\.tar\.gz again"):
        read_cifar10_archive(tmp_path / "junk.tar.gz")
