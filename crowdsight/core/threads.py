"""Thread plan of a crowdsight process: ONNX Runtime owns the cores, BLAS gets one.

The per-frame path calls BLAS only on tiny matrices (the tracker's 8x8 Kalman algebra, a
4x4 inverse), where a BLAS thread pool cannot help; OpenBLAS's pool still wakes up and
competes with ONNX Runtime's threads for the same cores. On this project's 2-vCPU VM,
8 interleaved `crowdsight bench --json --no-density` pairs gave a pipeline/detector ratio
of median 0.87 (0.82-0.92, bimodal) with the default OpenBLAS pool and 0.88 (0.86-0.91)
with one BLAS thread.
"""

from __future__ import annotations

import threading

from threadpoolctl import threadpool_limits

_lock = threading.Lock()
_done = False


def single_threaded_blas() -> None:
    """Limit BLAS (OpenBLAS, MKL, BLIS) to one thread in this process; idempotent.

    Only libraries already loaded are limited, so call it after numpy is imported:
    `CameraPipeline` does, so every process that runs the per-frame path (analyze, bench,
    camera workers) is covered. The limit stays until the process exits. ONNX Runtime and
    OpenCV keep their own pools.
    """
    global _done
    with _lock:
        if not _done:
            threadpool_limits(limits=1, user_api="blas")
            _done = True
