"""Facts about the VMs the pipeline runs on, and the limits derived from them.

``VM_TYPES`` is the one table of VM sizes (AWS Graviton4, as AWS documents them: the m8g
family has 4 GiB per vCPU, c8g 2 GiB, r8g 8 GiB; 2xlarge = 8 vCPUs, 4xlarge = 16, 12xlarge =
48, 16xlarge = 64). Every VM type a compute profile names must be listed here.
"""

from __future__ import annotations

from dataclasses import dataclass

GiB = 2**30


@dataclass(frozen=True)
class VMType:
    """vCPUs and memory of one VM type."""

    vcpus: int
    memory_gib: int


VM_TYPES: dict[str, VMType] = {
    "m8g.2xlarge": VMType(vcpus=8, memory_gib=32),
    "m8g.4xlarge": VMType(vcpus=16, memory_gib=64),
    "m8g.16xlarge": VMType(vcpus=64, memory_gib=256),
    "c8g.12xlarge": VMType(vcpus=48, memory_gib=96),
    "r8g.4xlarge": VMType(vcpus=16, memory_gib=128),
}

# Peak memory of one region task, with margin. bench_region_kernel.py measured the production
# path of a full CONUS region at ~1.65-1.8 GiB peak RSS (inputs included); the review's estimate
# was 3-4 GB once the Icechunk write buffers and the worker's share of the raster reads are
# counted. 4 GiB is the conservative end: a worker runs fewer regions at once, never too many.
REGION_TASK_GIB = 4

# Kept out of a worker's budget for region tasks: the OS, the Dask nanny and worker processes
# and the numba kernel cache (an estimate, not a measurement; generous on purpose).
WORKER_RESERVED_GIB = 4

# DuckDB's share of the VM's memory. Dask pauses a worker at 80 % of its memory and its nanny
# kills it at 95 %; 75 % keeps DuckDB (which spills past its limit) below the pause with room
# for Python, the task's own arrays and tippecanoe started after the query.
DUCKDB_MEMORY_FRACTION = 0.75

# The resource name of region tasks on a Dask worker (its value: GiB of memory).
MEMORY_RESOURCE = "MEMORY"


def vm_type(name: str) -> VMType:
    """The size of VM type ``name``; an unknown one is a KeyError listing the known ones."""
    try:
        return VM_TYPES[name]
    except KeyError:
        raise KeyError(
            f"no size known for VM type {name!r}; known: {', '.join(sorted(VM_TYPES))} "
            "(add it to ocr_core.machines.VM_TYPES)"
        ) from None


def worker_memory_gib(vm: VMType) -> int:
    """GiB of a worker on ``vm`` that region tasks may use together."""
    return vm.memory_gib - WORKER_RESERVED_GIB


def region_tasks_per_worker(vm: VMType, task_gib: float = REGION_TASK_GIB) -> int:
    """How many region tasks of ``task_gib`` a worker on ``vm`` runs at once (at least one)."""
    return max(1, int(worker_memory_gib(vm) // task_gib))


def duckdb_memory_limit(vm: VMType) -> str:
    """DuckDB's ``memory_limit`` on ``vm``, in whole GiB (DuckDB reads the ``GiB`` unit)."""
    return f"{int(vm.memory_gib * DUCKDB_MEMORY_FRACTION)}GiB"
