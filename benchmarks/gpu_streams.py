"""Many 1080p streams on one GPU: pack what the lent GPU machine lacks, then run the table there.

The GPU machine has PyTorch but no network and no crowdsight dependencies beyond the common
ones, and a call may carry at most 64 MiB. Two steps:

    # here: models (CSRNet's weights as float16 for the trip), 1080p frames, missing wheels
    python benchmarks/gpu_streams.py pack .devpack \
        --frames ../shared/data/mot17_mini/MOT17-04-FRCNN/img1

    # here, before spending device time: the same run on CPU, 2 small streams, end to end
    python benchmarks/gpu_streams.py run .devpack --dry-run

    # there (one device call; see the device tool's README for carrying .devpack)
    pip install --no-index --no-deps --target /tmp/site .devpack/wheels/*.whl
    PYTHONPATH=/tmp/site:. python3 benchmarks/gpu_streams.py run .devpack --cameras 1,50,100,200,400

``run`` restores the models (float16 weights back to float32 files; the backend computes in
float16 on CUDA anyway), then runs `crowdsight bench --cameras N --backend torch` for each N:
5 fps per stream, density once per second, the whole pipeline per camera, and prints one
table plus a JSON line per N. The models run in one inference server process for the GPU
(``--inference process``, the default here; `crowdsight.models.inference_process`), which
every camera worker process reaches through shared memory, so the batching service no
longer competes with camera threads for the GIL (the previous H200 run, with a batching
thread per worker, reached 13.6 of 500 frames/s at 100 streams with the GPU 4 % busy; the
next, with this server, 4.2 of 250 at 50 streams: every new batch size cost SSDLite a 3 s first
call on CUDA, which the server now pays once per bucket size at start, see `BatchingRuntime`).
``--dry-run`` plays 2 streams at 640×360 on the CPU for a few seconds through the same code
(restore, inference server, torch backend, table), to prove the script before device time
is spent. A speed run only: the restored CSRNet differs from the installed one by float16
rounding of its weights.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

WHEELS = [
    "pydantic",
    "pydantic_core",
    "annotated-types",
    "typing-inspection",
    "annotated-doc",
    "platformdirs",
    "alembic",
    "Mako",
    "SQLAlchemy",
    "argon2-cffi",
    "argon2-cffi-bindings",
    "cffi",
    "pycparser",
    "defusedxml",
    "supervision",
    "trackers",
    "pyDeprecate",
    "simplejpeg",
]
"""crowdsight's run-time needs that the GPU image (Python 3.12) does not have."""

UNUSED = {"vgg_front.onnx"}
"""Installed model files the streams bench never reads (the clothing features' VGG front end):
left out so the pack stays under the device call's 64 MiB."""


def pack(out: Path, frames: Path, n_frames: int) -> None:
    """Write models (float16 weights), frames and wheels into ``out`` (stays under 64 MiB)."""
    import subprocess
    from importlib.metadata import version

    import numpy as np
    import onnx
    from onnx import numpy_helper

    from crowdsight.models.install import MANIFEST, models_dir

    out.mkdir(parents=True, exist_ok=True)
    src = models_dir()
    dst = out / "models"
    for name in ("csrnet", "people-ssdlite"):
        (dst / name).mkdir(parents=True, exist_ok=True)
        for f in (src / name).iterdir():
            if f.name in UNUSED:
                continue
            if f.suffix == ".onnx":
                model = onnx.load(str(f))
                for init in model.graph.initializer:
                    arr = numpy_helper.to_array(init)
                    if arr.dtype == np.float32 and arr.size > 1024:
                        init.CopyFrom(numpy_helper.from_array(arr.astype(np.float16), init.name))
                onnx.save(model, str(dst / name / (f.stem + ".f16.onnx")))
            else:
                shutil.copy2(f, dst / name / f.name)
    shutil.copy2(src / MANIFEST, dst / MANIFEST)
    fdir = out / "frames"
    fdir.mkdir(exist_ok=True)
    for f in sorted(frames.glob("*.jpg"))[:n_frames]:
        shutil.copy2(f, fdir / f.name)
    wdir = out / "wheels"
    wdir.mkdir(exist_ok=True)
    platforms = [
        "manylinux_2_28_x86_64",
        "manylinux_2_27_x86_64",
        "manylinux_2_26_x86_64",
        "manylinux_2_17_x86_64",
        "manylinux2014_x86_64",
    ]
    for name in WHEELS:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps"]
        cmd += ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp"]
        for p in platforms:
            cmd += ["--platform", p]
        subprocess.run([*cmd, "-d", str(wdir), f"{name}=={version(name)}"], check=True)
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"packed {out}: {total / 2**20:.1f} MiB")


def restore(pack_dir: Path, models: Path) -> None:
    """Float32 model files from the packed float16 ones, in a models folder with manifest."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    src = pack_dir / "models"
    for name in ("csrnet", "people-ssdlite"):
        (models / name).mkdir(parents=True, exist_ok=True)
        for f in (src / name).iterdir():
            if f.name.endswith(".f16.onnx"):
                model = onnx.load(str(f))
                for init in model.graph.initializer:
                    arr = numpy_helper.to_array(init)
                    if arr.dtype == np.float16:
                        init.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), init.name))
                onnx.save(model, str(models / name / f.name.replace(".f16.onnx", ".onnx")))
            else:
                shutil.copy2(f, models / name / f.name)
    shutil.copy2(src / "manifest.json", models / "manifest.json")


def run(pack_dir: Path, cameras: list[int], args: argparse.Namespace) -> None:
    """Restore the models, then one multi-camera bench per camera count; print the table."""
    models = Path(os.environ.setdefault("CROWDSIGHT_MODELS", "/tmp/crowdsight-models"))
    restore(pack_dir, models)
    from crowdsight.pipeline.multibench import MultiBenchConfig, result_line, run_multi_bench

    out_dir = Path(os.environ.get("OUT", "."))
    shm = shutil.disk_usage("/dev/shm") if Path("/dev/shm").exists() else None
    if shm is not None:
        print(f"/dev/shm: {shm.free / 2**20:.0f} MiB free", flush=True)
    rows = []
    for n in cameras:
        cfg = MultiBenchConfig(
            cameras=n,
            fps=args.fps,
            seconds=args.seconds,
            size=args.size,
            backend="torch",
            workers=args.workers,
            max_batch=args.max_batch,
            max_wait_ms=args.max_wait_ms,
            density_every_s=args.density_every_s,
            warmup_s=args.warmup_s,
            inference=args.inference,
            device=args.device,
        )
        t0 = time.time()
        try:
            r = result_line(run_multi_bench(pack_dir / "frames", cfg, n_source_frames=8))
        except Exception as exc:  # one count failing should not lose the others
            print(json.dumps({"cameras": n, "error": f"{exc.__class__.__name__}: {exc}"}))
            continue
        r["wall_s"] = round(time.time() - t0, 1)
        rows.append(r)
        print(json.dumps(r), flush=True)
        with (out_dir / "gpu_streams.jsonl").open("a") as fh:
            fh.write(json.dumps(r) + "\n")
    print()
    print(
        "cameras | workers | inference | offered fps | pipeline fps | dropped | p95 ms | "
        "model fps | ratio | mean batch | GPU %"
    )
    for r in rows:
        print(
            f"{r['cameras']:7d} | {r['workers']:7d} | {r['inference']:>9} | "
            f"{r['offered_fps']:11.0f} | {r['aggregate_fps']:12.1f} | {r['dropped_frames']:7d} | "
            f"{r['p95_latency_ms']!s:>6} | {r['model_fps']:9.1f} | {r['ratio']} | "
            f"{r['detector_mean_batch']:10} | {r['gpu_util']}"
        )


def sweep(pack_dir: Path, seconds: float) -> None:
    """Model-only throughput against batch size: detector tiles and 1080p density maps."""
    import numpy as np

    models = Path(os.environ.setdefault("CROWDSIGHT_MODELS", "/tmp/crowdsight-models"))
    restore(pack_dir, models)
    from crowdsight.models.torch_backend import TorchRuntime

    rng = np.random.default_rng(0)
    plans = [
        ("people-ssdlite/ssdlite_people.onnx", (3, 300, 300), (1, 8, 32, 128, 256)),
        ("csrnet/csrnet.onnx", (3, 1080, 1920), (1, 2, 4)),
    ]
    for rel, shape, batches in plans:
        rt = TorchRuntime(models / rel)
        for b in batches:
            x = (rng.random((b, *shape)) * 255).astype(np.float32)
            rt.run({"image": x})
            n, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                rt.run({"image": x})
                n += b
            rate = n / (time.perf_counter() - t0)
            row = {"model": rel.split("/")[0], "batch": b, "images_per_s": round(rate, 1)}
            print(json.dumps(row), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack")
    p.add_argument("out", type=Path)
    p.add_argument("--frames", type=Path, required=True, help="folder of 1080p JPEG frames")
    p.add_argument("--n-frames", type=int, default=8)
    r = sub.add_parser("run")
    r.add_argument("pack", type=Path)
    r.add_argument("--cameras", default="1,50,100,200,400")
    r.add_argument("--fps", type=float, default=5.0)
    r.add_argument("--seconds", type=float, default=15.0)
    r.add_argument("--workers", type=int, default=None)
    r.add_argument("--max-batch", type=int, default=64)
    r.add_argument("--max-wait-ms", type=float, default=5.0)
    r.add_argument("--density-every-s", type=float, default=1.0)
    r.add_argument("--warmup-s", type=float, default=45.0)
    r.add_argument("--inference", choices=["thread", "process"], default="process")
    r.add_argument("--device", default="auto", help="torch device (auto: CUDA when present)")
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="CPU rehearsal: 2 cameras at 640x360, 2 fps, 6 s, density every 2 s",
    )
    w = sub.add_parser("sweep")
    w.add_argument("pack", type=Path)
    w.add_argument("--seconds", type=float, default=2.0)
    a = ap.parse_args()
    if a.cmd == "sweep":
        sweep(a.pack, a.seconds)
    elif a.cmd == "pack":
        pack(a.out, a.frames, a.n_frames)
    else:
        a.size = (1920, 1080)
        if a.dry_run:
            a.size, a.device, a.fps, a.seconds = (640, 360), "cpu", 2.0, 6.0
            a.density_every_s, a.workers, a.max_batch = 2.0, 2, 8
            if a.cameras == "1,50,100,200,400":
                a.cameras = "2"
        run(a.pack, [int(c) for c in a.cameras.split(",")], a)


if __name__ == "__main__":
    main()
