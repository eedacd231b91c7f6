"""tools/gpukit: the parts a device call carries are joined and checked before anything is unpacked (docs/gpu.md).

A part lost, cut short or received twice would otherwise surface on the GPU machine as a broken library or model,
after device time was spent; here it is refused with a message saying what to carry.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from conftest import REPO

PACK, DEVICE = REPO / "tools" / "gpukit" / "pack.sh", REPO / "tools" / "gpukit" / "device.sh"


def tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def packed(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src"
    for rel, size in (("kit/bin/tool", 9000), ("kit/site/m.py", 700), ("models/a/model.onnx", 12000)):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(os.urandom(size))
    subprocess.run(["bash", PACK, src, tmp_path / "carry", "5000", "8000", "kit", "models"], check=True,
                   capture_output=True)
    return src, tmp_path / "carry"


def receive(tmp_path: Path, *parts: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GPUKIT_ROOT": str(tmp_path / "root")}
    return subprocess.run(["bash", DEVICE, "receive", *map(str, parts)], capture_output=True, text=True, env=env)


def test_parts_are_joined_in_any_order_once_all_are_there(tmp_path: Path) -> None:
    src, carry = packed(tmp_path)
    parts = sorted(carry.iterdir())
    sizes = [sum(f.stat().st_size for f in c.glob("kit.tar.*")) for c in parts]
    assert [p.name for p in parts] == [f"c{i}" for i in range(len(parts))] and len(parts) >= 3
    assert sizes[0] == 5000 and all(0 < s <= 8000 for s in sizes[1:])
    early = receive(tmp_path, parts[2])
    assert early.returncode == 0 and "part c0 (with 'count') has not been carried yet" in early.stdout
    for part in (parts[0], parts[1], *parts[3:-1]):
        got = receive(tmp_path, part)
        assert got.returncode == 0 and "carry the next" in got.stdout and not (tmp_path / "root" / "kit").exists()
    done = receive(tmp_path, parts[-1])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "kit: unpacked" in done.stdout
    assert tree(tmp_path / "root" / "kit") == tree(src / "kit")
    assert tree(tmp_path / "root" / "models") == tree(src / "models")


def test_a_damaged_part_is_refused_and_nothing_unpacked(tmp_path: Path) -> None:
    _, carry = packed(tmp_path)
    damaged = carry / "c2" / "kit.tar.02"
    data = bytearray(damaged.read_bytes())
    data[100] ^= 1
    damaged.write_bytes(bytes(data))
    got = receive(tmp_path, *sorted(carry.iterdir()))
    assert got.returncode == 1
    assert "kit: the joined parts do not match their sha256; carry them again" in got.stdout
    assert not (tmp_path / "root" / "kit").exists() and not (tmp_path / "root" / "kit.tar").exists()


def test_a_folder_that_is_no_part_is_refused(tmp_path: Path) -> None:
    (tmp_path / "other").mkdir()
    got = receive(tmp_path, tmp_path / "other")
    assert got.returncode == 1 and "neither a TensorRT part" in got.stdout
