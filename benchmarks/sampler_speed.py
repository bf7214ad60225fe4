"""Episodes per second of metadl's N-way K-shot sampler, beside learn2learn's TaskDataset when available.

Usage:
    python benchmarks/sampler_speed.py [--dataset synthetic|omniglot] [--peers /tmp/peers/bin/python] [--out FILE]

The metadl sampler builds a whole meta-batch by index gathers on one tensor. learn2learn 0.2.0
(installed per ../shared/PERF-NOTES.md into a separate environment) is measured on the same tensors
in a child process with its documented pipeline: MetaDataset + TaskDataset(NWays, KShots, LoadData,
RemapLabels). Both produce 5-way 1-shot + 15 query episodes (Omniglot/MAML-style, 28x28).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]

PEER_SCRIPT = r"""
import json, sys, time
import numpy as np, torch
lib = torch.library.Library("torchvision", "DEF")  # see PERF-NOTES: learn2learn imports torchvision
lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
import learn2learn as l2l
torch.set_num_threads(1)
arrays = np.load(sys.argv[1])
x, y = torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])
n_way, k, q, episodes = map(int, sys.argv[2:6])
data = l2l.data.MetaDataset(torch.utils.data.TensorDataset(x, y))
tasks = l2l.data.TaskDataset(data, task_transforms=[
    l2l.data.transforms.NWays(data, n_way), l2l.data.transforms.KShots(data, k + q),
    l2l.data.transforms.LoadData(data), l2l.data.transforms.RemapLabels(data)], num_tasks=-1)
for _ in range(20): tasks.sample()
start = time.perf_counter()
for _ in range(episodes): tasks.sample()
print(json.dumps({"episodes_per_s": episodes / (time.perf_counter() - start)}))
"""


def load(name: str):
    if name == "synthetic":
        from metadl.data.synthetic import synthetic_glyphs

        return synthetic_glyphs(split="train")
    from metadl.data import create_dataset

    return create_dataset("omniglot", root=REPO.parent / "shared" / "data" / "omniglot", split="train")


def metadl_rate(ds, n_way: int, k: int, q: int, meta_batch: int, seconds: float = 3.0) -> float:
    from metadl.tasks import EpisodeSampler

    sampler = EpisodeSampler(ds, n_way=n_way, k_shot=k, n_query=q, seed=0)
    for _ in range(5):
        sampler.sample_batch(meta_batch)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        sampler.sample_batch(meta_batch)
        done += meta_batch
    return done / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", choices=["synthetic", "omniglot"], default="synthetic")
    parser.add_argument("--peers", help="python of an environment with learn2learn 0.2.0")
    parser.add_argument("--out", help="append a markdown section to this file")
    args = parser.parse_args()
    torch.set_num_threads(1)  # sampling runs beside training: one thread, as in a data-loader worker
    ds = load(args.dataset)
    n_way, k, q = 5, 1, 15
    rows = [(f"metadl EpisodeSampler, meta-batch {mb}", metadl_rate(ds, n_way, k, q, mb)) for mb in (1, 32)]
    if args.peers:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "data.npz"
            x, y = ds.tensors()
            np.savez(path, x=x.numpy(), y=y.numpy())
            script = Path(tmp) / "peer.py"
            script.write_text(PEER_SCRIPT)
            proc = subprocess.run(
                [args.peers, str(script), str(path), str(n_way), str(k), str(q), "300"],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode == 0:
                rows.append(
                    (
                        "learn2learn 0.2.0 TaskDataset",
                        json.loads(proc.stdout.strip().splitlines()[-1])["episodes_per_s"],
                    )
                )
            else:
                print(f"learn2learn run failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next(
        (ln.split(":", 1)[1].strip() for ln in cpuinfo.splitlines() if ln.startswith("model name")),
        platform.processor(),
    )
    lines = [
        f"### Episode sampling, {ds.name} ({ds.num_classes} classes), {n_way}-way {k}-shot {q}-query",
        "",
        f"Command: `python benchmarks/sampler_speed.py --dataset {args.dataset}{' --peers ' + args.peers if args.peers else ''}`  ",
        f"Machine: {cpu}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        "",
        "| sampler | episodes / s |",
        "|---|---:|",
        *[f"| {name} | {rate:,.0f} |" for name, rate in rows],
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
