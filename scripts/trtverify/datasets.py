"""The datasets trtverify trains on: scikit-learn's digits (offline) and CIFAR-10 (download or local archive).

A local ``cifar-10-python.tar.gz`` holds pickled batches. They are read with an unpickler that accepts only the
handful of numpy and builtin types those batches contain, so a tampered archive cannot run code.
"""

from __future__ import annotations

import io
import pickle
import tarfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .errors import UserError
from .schema import Entry


@dataclass(frozen=True)
class Split:
    x_train: np.ndarray  # float32 NHWC in [0, 1]
    y_train: np.ndarray  # int64
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple[str, ...]


def load(name: str, options: Mapping[str, Any], seed: int) -> Split:
    """``options``: the dataset's entry of the config; what it leaves out takes the schema's default."""
    loaders = {"digits": _digits, "cifar10": _cifar10}
    if name not in loaders:
        raise UserError(f"unknown dataset source '{name}'; available: {', '.join(loaders)}")
    return loaders[name](Entry(options, "datasets.*"), seed)


def _digits(options: Mapping[str, Any], seed: int) -> Split:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[..., None]
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=float(options["test_fraction"]), random_state=seed, stratify=y
    )
    return Split(x_tr, y_tr, x_te, y_te, tuple(str(i) for i in range(10)))


CIFAR_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def _cifar10(options: Mapping[str, Any], seed: int) -> Split:
    archive = options["archive"]
    if archive:
        (x_tr, y_tr), (x_te, y_te) = read_cifar10_archive(Path(archive))
    elif options["download"]:
        import keras

        try:
            (x_tr, y_tr), (x_te, y_te) = keras.datasets.cifar10.load_data()
        except Exception as exc:
            raise UserError(f"CIFAR-10 download failed ({exc}); download cifar-10-python.tar.gz yourself and "
                            "set datasets.<name>.archive to its path") from None
    else:
        raise UserError("dataset cifar10 needs either 'archive: path/to/cifar-10-python.tar.gz' or "
                        "'download: true' (network access) in its config entry")
    to_float = lambda a: (np.asarray(a, dtype=np.float32) / 255.0)  # noqa: E731
    return Split(to_float(x_tr), np.asarray(y_tr).reshape(-1).astype(np.int64),
                 to_float(x_te), np.asarray(y_te).reshape(-1).astype(np.int64), CIFAR_CLASSES)


class _CifarUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("builtins", "bytes"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise UserError(f"the CIFAR-10 archive contains a pickled {module}.{name}, which a genuine archive "
                            "does not; refusing to load it")
        return super().find_class(module, name)


def _batch(tar: tarfile.TarFile, member: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        raw = tar.extractfile(member)
    except KeyError:
        raise UserError(f"the CIFAR-10 archive lacks {member}; is it cifar-10-python.tar.gz?") from None
    if raw is None:
        raise UserError(f"{member} in the CIFAR-10 archive is not a file")
    payload = raw.read()
    try:
        d = _CifarUnpickler(io.BytesIO(payload), encoding="bytes").load()
        data = np.asarray(d[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except UserError:
        raise
    except Exception as exc:  # damaged pickle data fails in many ways (AttributeError, IndexError, ...)
        raise UserError(f"{member} in the CIFAR-10 archive is malformed ({type(exc).__name__}: {exc})") from None
    if len(labels) != len(data):
        raise UserError(f"{member} in the CIFAR-10 archive has {len(data)} images but {len(labels)} labels")
    return data, labels


def _read_to_end(tar: tarfile.TarFile) -> None:
    """Decompress the rest of the archive: gzip checks its CRC and length only at the end of the stream, so without
    this a corrupt or cut-off archive whose damage lies in the image bytes would load damaged images silently."""
    fileobj = tar.fileobj
    if fileobj is not None:
        while fileobj.read(1 << 20):
            pass


def read_cifar10_archive(path: Path) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    if not path.is_file():
        raise UserError(f"CIFAR-10 archive {path} does not exist")
    try:
        with tarfile.open(path, "r:gz") as tar:
            _read_to_end(tar)  # the checksum first: a damaged archive is reported as such, not as a bad batch
            train = [_batch(tar, f"cifar-10-batches-py/data_batch_{i}") for i in range(1, 6)]
            test = _batch(tar, "cifar-10-batches-py/test_batch")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise UserError(f"{path} is not a readable .tar.gz ({exc}); it is truncated or corrupt: "
                        "download cifar-10-python.tar.gz again") from None
    x_tr = np.concatenate([b[0] for b in train])
    y_tr = np.concatenate([b[1] for b in train])
    return (x_tr, y_tr), test
