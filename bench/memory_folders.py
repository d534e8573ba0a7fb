"""Peak memory of `striate train` on image folders of N and 4N photos: it must not grow with N.

    python bench/memory_folders.py                         # 5,000 and 20,000 JPEGs at 224×224
    python bench/memory_folders.py --sizes 1250,5000 --src /path/to/other/checkout/src   # another version

For each size the script writes a folder of synthetic JPEGs (10 classes, smooth random images, written once
with Pillow into --work, default /tmp/striate-memory, never into the repository), then runs `striate train`
on it twice in a fresh process each time, with the cache in --work: a cold run (decodes the folder into
the cache) and a warm run (reads the cache). Each run is one epoch of a small layer-list model (8×8 average
pooling, then one Linear layer), so the data path dominates. Reported per run: the process's peak resident
set (ru_maxrss, from os.wait4 on that child only), the wall time and the epoch time the run recorded
(summary.json's `last.time`). The results are also written to <work>/results-<label>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

MODEL = """
data = "{data}"
epochs = 1
batch_size = 64
val_fraction = 0.1
preprocess = "{preprocess}"
diagnostics = 0
report = "off"
seed = 0
[model]
layers = [{{ layer = "AvgPool2d", kernel_size = 8 }}, {{ layer = "Flatten" }}, {{ layer = "Linear" }}]
"""


def write_folder(folder: Path, n: int, side: int, classes: int = 10) -> Path:
    """n JPEGs of side×side in `folder/<class>/`, once (a marker file records a complete folder)."""
    from PIL import Image

    done = folder / ".complete"
    if done.exists():
        return folder
    rng = np.random.default_rng(n)
    for i in range(n):
        cls = folder / f"class{i % classes}"
        cls.mkdir(parents=True, exist_ok=True)
        small = rng.integers(0, 256, (7, 7, 3), dtype=np.uint8)
        Image.fromarray(small).resize((side, side), Image.Resampling.BILINEAR).save(cls / f"{i:06d}.jpg", quality=85)
    done.touch()
    return folder


def train(src: Path, data: Path, work: Path, out: Path, preprocess: str) -> dict:
    """One `striate train` process on `data`: peak RSS (MiB), wall seconds, epoch seconds."""
    config = work / f"{out.name}.toml"
    config.write_text(MODEL.format(data=data, preprocess=preprocess))
    env = {**os.environ, "PYTHONPATH": str(src), "STRIATE_DATA": str(work / "cache"), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "striate", "train", "--config", str(config), "--out", str(out)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    err = proc.stderr.read().decode(errors="replace")
    proc.stderr.close()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"striate train failed on {data}:\n{err[-2000:]}")
    epoch = json.loads((out / "summary.json").read_text())["last"].get("time")
    rss = usage.ru_maxrss / 1024 if sys.platform != "darwin" else usage.ru_maxrss / 2**20  # KiB on Linux
    return {"peak_rss_mib": round(rss, 1), "wall_s": round(wall, 1), "epoch_s": epoch and round(epoch, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="5000,20000", help="image counts, comma-separated (default: 5000,20000)")
    parser.add_argument("--side", type=int, default=224, help="image side in pixels (default: 224)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/striate-memory"), help="folders, cache and runs")
    parser.add_argument("--src", type=Path, default=Path(__file__).resolve().parents[1] / "src",
                        help="the striate source tree to measure (default: this checkout's)")
    parser.add_argument("--label", default="after", help="names the results file (default: after)")
    parser.add_argument("--preprocess", default="per-channel-mean", help="the runs' preprocessing")
    args = parser.parse_args()
    results = []
    for n in (int(s) for s in args.sizes.split(",")):
        data = write_folder(args.work / f"photos-{n}-{args.side}", n, args.side)
        for phase in ("cold", "warm"):
            if phase == "cold":  # drop this version's cache entries of the folder: the cold run decodes
                for f in (args.work / "cache" / "image_folder").glob(f"{data.name}-*"):
                    f.unlink()
            out = args.work / "runs" / f"{args.label}-{n}-{phase}"
            if out.exists():
                import shutil

                shutil.rmtree(out)
            r = {"images": n, "phase": phase, **train(args.src, data, args.work, out, args.preprocess)}
            results.append(r)
            print(f"{n:>7,} images  {phase}: peak RSS {r['peak_rss_mib']:>8.1f} MiB  epoch {r['epoch_s']}s  "
                  f"wall {r['wall_s']}s", flush=True)
    (args.work / f"results-{args.label}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
