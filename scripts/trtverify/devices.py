"""Which GPU a step runs on: the device a shard is given, what it is (name, UUID, compute capability), and the
check that an engine runs on the GPU model it was built for.

A job is given its device through CUDA_VISIBLE_DEVICES, so that the same plan runs on one machine and on SLURM: under
SLURM, --gres=gpu:1 sets it for each job; on one machine, Snakemake has no per-job device, so a shard's slot (its
index modulo the configured GPU count) picks one of the visible devices (docs/cluster.md, "Several GPUs").
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
from typing import Any, Callable

from .errors import UserError


def add_placement_arguments(p: argparse.ArgumentParser, shard_help: str) -> None:
    """--shard and --device-slot, as the predicting steps (Python and C++) take them."""
    p.add_argument("--shard", help=shard_help)
    p.add_argument("--device-slot", type=int, help="run on visible GPU number S (modulo their count)")


def run_placed(run: Callable[[argparse.Namespace, str | None], int], args: argparse.Namespace) -> int:
    """Run a predicting step on its --device-slot; a user error of one shard among several names the shard and the
    device it failed on (its job's log is one of N)."""
    placement = pin_device(args.device_slot) if args.device_slot is not None else None
    try:
        return run(args, placement)
    except UserError as exc:
        if args.shard or placement:
            raise UserError(f"shard {args.shard or '-'} on {placement or 'the default device'}: {exc}") from None
        raise


def placement_record(shard: str | None, placement: str | None, gpu: dict[str, Any] | None,
                     rows: tuple[int, int]) -> dict[str, Any]:
    """What a predicting step's record says of where it ran: its shard, device and rows; nothing for a plain run."""
    if not (shard or placement):
        return {}
    return {"shard": shard, "placement": placement, "gpu": gpu, "start": rows[0], "stop": rows[1]}


def pin_device(slot: int) -> str:
    """Make device ``slot`` (modulo the visible ones) the only one this process sees, and name it. Under SLURM the
    job's allocation already is its device (CUDA_VISIBLE_DEVICES set by --gres=gpu:1): left as it is."""
    if "SLURM_JOB_ID" in os.environ:
        return f"SLURM job {os.environ['SLURM_JOB_ID']} GPU {os.environ.get('CUDA_VISIBLE_DEVICES', '?')}"
    visible = visible_devices()
    if not visible:  # no GPU here (ONNX Runtime on CPU, the tests' simulated devices): a slot is a process
        return f"slot {slot} (no GPU visible)"
    chosen = visible[slot % len(visible)]
    os.environ["CUDA_VISIBLE_DEVICES"] = chosen
    return f"slot {slot} (CUDA device {chosen})"


def nvidia_smi(*args: str) -> list[str]:
    """The lines nvidia-smi prints for ``args``: none where it is not installed, fails or hangs (no GPU here)."""
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        out = subprocess.run([smi, *args], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in out.splitlines() if line.strip()]


def visible_devices() -> list[str]:
    """The CUDA devices this process may use: CUDA_VISIBLE_DEVICES' entries when it is set, else one per GPU that
    nvidia-smi lists, else none."""
    if "CUDA_VISIBLE_DEVICES" in os.environ:
        return [d.strip() for d in os.environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip()]
    return [str(i) for i in range(sum(line.startswith("GPU ") for line in nvidia_smi("-L")))]


def describe_device(index: int = 0) -> dict[str, Any] | None:
    """Name, compute capability, PCI bus and UUID of CUDA device ``index`` of this process (0: the one a slot pinned
    it to), or None where no GPU is visible (ONNX Runtime on CPU). pycuda where it is installed, nvidia-smi for the
    UUID (the name by which a faulty card is found and replaced)."""
    try:
        import pycuda.driver as cuda
    except ImportError:
        return None
    try:
        cuda.init()
        if cuda.Device.count() <= index:
            return None
        dev = cuda.Device(index)
        major, minor = dev.compute_capability()
        bus = dev.pci_bus_id()
    except cuda.Error:
        return None
    return {"name": dev.name(), "compute_capability": f"{major}.{minor}", "pci_bus_id": bus, "uuid": gpu_uuid(bus)}


def gpu_uuid(pci_bus_id: str) -> str | None:
    """The GPU's UUID as nvidia-smi reports it, matched by PCI bus id."""
    for line in nvidia_smi("--query-gpu=pci.bus_id,uuid", "--format=csv,noheader"):
        bus, _, uuid = line.partition(",")
        # nvidia-smi writes 8 hex digits of PCI domain, CUDA 4: compare from the bus on
        if bus.strip().lower().split(":", 1)[-1] == pci_bus_id.lower().split(":", 1)[-1]:
            return uuid.strip()
    return None


def check_engine_device(record: dict[str, Any], engine: str, device: dict[str, Any] | None) -> None:
    """Refuse to run an engine on another GPU model than the one that built it: TensorRT's tactics are chosen for
    the builder's GPU, and on another model the engine is refused, or runs with other kernels (other bits)."""
    built = record.get("device")
    if not built or not device or "compute_capability" not in device:
        return  # an engine recorded before devices were, or no GPU here (nothing TensorRT could run on)
    if (built["name"], built["compute_capability"]) != (device["name"], device["compute_capability"]):
        raise UserError(f"engine {engine} was built on a {built['name']} (compute capability "
                        f"{built['compute_capability']}), but this job runs on a {device['name']} (compute capability "
                        f"{device['compute_capability']}): build the engine on this GPU model (run the job on the "
                        "same GPU model, or rebuild with snakemake --forcerun build_engine on it)")
