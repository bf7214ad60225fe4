"""Seconds per MAML meta-iteration and peak memory: metadl (vmap, loop, task chunks) beside learn2learn and higher.

The MAML paper's Omniglot setting: Conv-4 (64 channels, batch norm, 112,261 parameters), 1x28x28,
5-way 1-shot, 1 query per class, 32 tasks per meta-batch, 1 inner step, inner lr 0.4, Adam 1e-3, on
synthetic tensors (no data loading is timed). Every configuration runs in a fresh process, with the
allocator settings of ../shared/PERF-NOTES.md; configurations are interleaved over ``--rounds``
rounds. All implementations start from the same weights and inputs, and their meta-gradients are
compared in float64 before timing (``max |g - g_ref| / max |g_ref|`` over all entries, the reference
being metadl's per-task loop of the same order; float32 is timed).

learn2learn 0.2.0 and higher 0.2.1 run in a separate environment (``--peers``, default
/tmp/peers/bin/python; install steps in ../shared/PERF-NOTES.md). That Python must import torch: a
venv made with ``--system-site-packages`` from a Python that has it, or one with a ``.pth`` file naming
the project venv's site-packages. They use ``nn.BatchNorm2d(track_running_stats=False)`` (their
usual, and fastest, choice; the same function as metadl's batch norm) and the per-task
``backward()`` of their documented examples (low memory). Missing peers are reported and skipped.

Usage:
    python benchmarks/maml_speed.py [--quick] [--out FILE] [--rounds 3] [--iters 20] [--warmup 3]
                                    [--chunks 4,8,16] [--peers PYTHON] [--threads N] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

T, N_WAY, HIDDEN, SIDE, INNER_LR, OUTER_LR = 32, 5, 64, 28, 0.4, 1e-3
MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": "33554432",
    "MALLOC_TRIM_THRESHOLD_": "17179869184",
    "MALLOC_TOP_PAD_": "1073741824",
}
REPO = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- the computations (run in a child process)


def torch_conv4() -> nn.Module:
    """Conv-4 + head in plain torch, parameters in the same order as metadl's (for the peers)."""
    layers: list[nn.Module] = []
    channels = 1
    for _ in range(4):
        layers += [
            nn.Conv2d(channels, HIDDEN, 3, padding=1),
            nn.BatchNorm2d(HIDDEN, track_running_stats=False),
        ]
        layers += [nn.ReLU(), nn.MaxPool2d(2)]
        channels = HIDDEN
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(HIDDEN, N_WAY))


def load_setup(cfg: dict, model: nn.Module) -> tuple[torch.Tensor, ...]:
    """Copy the shared initial weights into ``model`` (converted to ``cfg["dtype"]``); return the meta-batch."""
    arrays = np.load(cfg["setup"], allow_pickle=False)
    dtype = getattr(torch, cfg["dtype"])
    model.to(dtype)
    with torch.no_grad():
        for i, p in enumerate(model.parameters()):
            p.copy_(torch.from_numpy(arrays[f"p{i}"]))
    sx, sy, qx, qy = (torch.from_numpy(arrays[k]) for k in ("sx", "sy", "qx", "qy"))
    return sx.to(dtype), sy, qx.to(dtype), qy


def metadl_step(cfg: dict):
    from metadl.algorithms import create_learner  # noqa: PLC0415 (the peers' Python need not have metadl)
    from metadl.models import create_backbone  # noqa: PLC0415
    from metadl.tasks.task import TaskBatch  # noqa: PLC0415

    backbone = create_backbone("conv4", in_channels=1, hidden=HIDDEN, image_size=SIDE)
    learner = create_learner(
        "maml" if cfg["order"] == 2 else "fomaml", backbone=backbone, n_way=N_WAY, inner_lr=INNER_LR,
        vectorize=cfg["vectorize"], task_chunk_size=cfg["chunk"],
    )  # fmt: skip
    batch = TaskBatch(*load_setup(cfg, learner))

    def step() -> None:
        learner(batch).loss.backward()

    return learner, step


def l2l_step(cfg: dict):
    lib = torch.library.Library("torchvision", "DEF")  # PERF-NOTES: learn2learn imports torchvision
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    import learn2learn as l2l  # noqa: PLC0415

    model = torch_conv4()
    sx, sy, qx, qy = load_setup(cfg, model)
    maml = l2l.algorithms.MAML(model, lr=INNER_LR, first_order=cfg["order"] == 1)

    def step() -> None:
        for t in range(T):
            learner = maml.clone()
            learner.adapt(F.cross_entropy(learner(sx[t]), sy[t]))
            (F.cross_entropy(learner(qx[t]), qy[t]) / T).backward()

    return maml, step


def higher_step(cfg: dict):
    import higher  # noqa: PLC0415

    model = torch_conv4()
    sx, sy, qx, qy = load_setup(cfg, model)
    inner_opt = torch.optim.SGD(model.parameters(), lr=INNER_LR)
    second = cfg["order"] == 2

    def step() -> None:
        for t in range(T):
            with higher.innerloop_ctx(
                model, inner_opt, copy_initial_weights=False, track_higher_grads=second
            ) as (
                fmodel,
                diffopt,
            ):
                diffopt.step(F.cross_entropy(fmodel(sx[t]), sy[t]))
                loss = F.cross_entropy(fmodel(qx[t]), qy[t]) / T
                if second:
                    loss.backward()
                else:  # first order: the query gradient at the adapted weights, added to the initial weights
                    grads = torch.autograd.grad(loss, list(fmodel.parameters()))
                    for p, g in zip(model.parameters(), grads, strict=True):
                        p.grad = g if p.grad is None else p.grad + g

    return model, step


def run_child(cfg: dict) -> dict:
    """Time ``cfg["iters"]`` float32 meta-iterations, or (``cfg["grad_out"]`` set) save one float64 meta-gradient.

    The gradient check runs in float64 in its own process: in float32, rounding flips a few ReLU and
    max-pool decisions near their kinks differently in every implementation, which changes gradients by
    up to ~1e-2 (measured), so float32 agreement says little; in float64 the implementations agree to
    ~1e-12. Its own process keeps its memory out of the peak RSS of the timed run.
    """
    torch.set_num_threads(cfg["threads"])
    make = {"metadl": metadl_step, "learn2learn": l2l_step, "higher": higher_step}[cfg["impl"]]
    if cfg.get("grad_out"):
        module, step = make(cfg | {"dtype": "float64"})
        step()
        np.savez(cfg["grad_out"], *[p.grad.numpy() for p in module.parameters()])
        return {}
    module, step = make(cfg | {"dtype": "float32"})
    optimizer = torch.optim.Adam(module.parameters(), lr=OUTER_LR)
    wall, cpu = [], []
    for i in range(cfg["warmup"] + cfg["iters"]):
        t0, c0 = time.perf_counter(), time.process_time()
        optimizer.zero_grad(set_to_none=True)
        step()
        optimizer.step()
        if i >= cfg["warmup"]:
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    return {"wall": wall, "cpu": cpu, "peak_rss": peak}


# ---------------------------------------------------------------- the driver


def configurations(chunks: list[int], peers: bool) -> list[dict]:
    configs = []
    for order in (2, 1):
        configs.append({"impl": "metadl", "order": order, "vectorize": True, "chunk": None})
        configs.append({"impl": "metadl", "order": order, "vectorize": False, "chunk": None})
    for chunk in chunks:
        configs.append({"impl": "metadl", "order": 2, "vectorize": True, "chunk": chunk})
    if peers:
        for impl in ("learn2learn", "higher"):
            for order in (2, 1):
                configs.append({"impl": impl, "order": order, "vectorize": False, "chunk": None})
    return configs


def label(cfg: dict) -> str:
    if cfg["impl"] != "metadl":
        return cfg["impl"]
    mode = "vmap" if cfg["vectorize"] else "loop"
    return f"metadl {mode}" + (f", chunks of {cfg['chunk']}" if cfg["chunk"] else "")


def make_setup(path: Path) -> None:
    """Initial weights (metadl's Conv-4 initialisation, seed 0) and one synthetic meta-batch."""
    from metadl.models import create_backbone  # noqa: PLC0415

    torch.manual_seed(0)
    backbone = create_backbone("conv4", in_channels=1, hidden=HIDDEN, image_size=SIDE)
    params = [*backbone.parameters(), *nn.Linear(backbone.out_features, N_WAY).parameters()]
    labels = torch.arange(N_WAY).expand(T, N_WAY).contiguous()
    arrays = {f"p{i}": p.detach().numpy() for i, p in enumerate(params)}
    arrays |= {
        "sx": torch.rand(T, N_WAY, 1, SIDE, SIDE).numpy(),
        "qx": torch.rand(T, N_WAY, 1, SIDE, SIDE).numpy(),
    }
    arrays |= {"sy": labels.numpy(), "qy": labels.numpy()}
    np.savez(path, **arrays)


def spawn(python: str, cfg: dict) -> dict:
    env = {**os.environ, **MALLOC}
    proc = subprocess.run(
        [python, str(Path(__file__).resolve()), "--child", json.dumps(cfg)],
        capture_output=True,
        text=True,
        env=env,
    )
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["(no output)"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def peers_available(python: str) -> bool:
    if not Path(python).exists():
        return False
    probe = "import torch; lib = torch.library.Library('torchvision', 'DEF'); "
    probe += "lib.define('nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor'); "
    probe += "lib.define('qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor'); import learn2learn, higher"
    return subprocess.run([python, "-c", probe], capture_output=True).returncode == 0


def grad_difference(a: Path, b: Path) -> float:
    """``max |g_a - g_b| / max |g_b|`` over all entries (conv biases before batch norm have ~0 gradients,
    so a per-tensor relative difference would be meaningless for them)."""
    ga, gb = np.load(a), np.load(b)
    diff = max(float(np.abs(ga[k] - gb[k]).max()) for k in gb.files)
    return diff / max(float(np.abs(gb[k]).max()) for k in gb.files)


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{cpu}, {os.cpu_count()} cores; Python {platform.python_version()}, torch {torch.__version__}; "
        f"malloc: {' '.join(f'{k}={v}' for k, v in MALLOC.items())}"
    )


def profile(threads: int, setup: Path) -> None:
    """Where the time of one metadl vmap second-order iteration goes (torch.profiler, self CPU time)."""
    from torch.profiler import profile as torch_profile  # noqa: PLC0415

    torch.set_num_threads(threads)
    cfg = {"order": 2, "vectorize": True, "chunk": None, "setup": str(setup), "dtype": "float32"}
    _, step = metadl_step(cfg)
    for _ in range(2):
        step()
    with torch_profile() as prof:
        step()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 round, 1 warm-up, 2 iterations: checks that it runs"
    )
    parser.add_argument("--out", type=Path, help="write a markdown table, the command and the machine here")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--chunks", default="2,4,8", help="task chunk sizes to try with second-order vmap")
    parser.add_argument("--peers", default="/tmp/peers/bin/python", help="Python with learn2learn and higher")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument(
        "--only", help="comma-separated substrings: run the configurations whose label has one"
    )
    parser.add_argument("--profile", action="store_true", help="profile one metadl vmap iteration and exit")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(run_child(json.loads(args.child))))
        return
    if args.quick:
        args.rounds, args.iters, args.warmup = 1, 2, 1

    with tempfile.TemporaryDirectory() as tmp:
        setup = Path(tmp) / "setup.npz"
        make_setup(setup)
        if args.profile:
            profile(args.threads, setup)
            return
        has_peers = peers_available(args.peers)
        if not has_peers:
            print(f"learn2learn / higher not importable with {args.peers}: measuring metadl alone")
        configs = configurations([int(c) for c in args.chunks.split(",") if c], has_peers)
        if args.only:
            keep = args.only.split(",")
            configs = [c for c in configs if any(k in f"{label(c)} {c['order']}" for k in keep)]
        results: dict[int, list[dict]] = {i: [] for i in range(len(configs))}
        for i, cfg in enumerate(configs):  # float64 meta-gradients at the shared initial weights
            grad = cfg | {
                "threads": args.threads,
                "setup": str(setup),
                "grad_out": str(Path(tmp) / f"grad{i}.npz"),
            }
            error = spawn(sys.executable if cfg["impl"] == "metadl" else args.peers, grad).get("error")
            if error:
                print(f"gradient check of {label(cfg)}, order {cfg['order']} failed: {error}")
        for r in range(args.rounds):
            order = list(range(len(configs)))
            order = order[r % len(order) :] + order[: r % len(order)]  # rotate: no config always goes first
            for i in order:
                cfg = configs[i] | {"iters": args.iters, "warmup": args.warmup, "threads": args.threads}
                cfg |= {"setup": str(setup)}
                python = sys.executable if cfg["impl"] == "metadl" else args.peers
                out = spawn(python, cfg)
                results[i].append(out)
                status = out.get("error") or f"{statistics.median(out['wall']):.3f} s/iter"
                print(f"round {r + 1}: {label(cfg)}, order {cfg['order']}: {status}", flush=True)
        table = summarise(configs, results, Path(tmp))
    command = " ".join([Path(sys.executable).name, *sys.argv])
    report = f"{table}\n\nCommand: `{command}`\n\nMachine: {machine()}; {args.threads} threads\n"
    print("\n" + report)
    if args.out:
        args.out.write_text(report)


def summarise(configs: list[dict], results: dict[int, list[dict]], tmp: Path) -> str:
    ok = {i: [r for r in rs if "error" not in r] for i, rs in results.items()}
    median = {i: statistics.median([t for r in rs for t in r["wall"]]) for i, rs in ok.items() if rs}
    # Reference gradient per order: metadl's per-task loop (or, if not run, the first metadl configuration).
    reference: dict[int, int] = {}
    for i, c in sorted(enumerate(configs), key=lambda ic: ic[1]["impl"] != "metadl" or ic[1]["vectorize"]):
        if c["impl"] == "metadl" and i in median:
            reference.setdefault(c["order"], i)
    l2l = {c["order"]: i for i, c in enumerate(configs) if c["impl"] == "learn2learn" and i in median}
    rows = [
        "| implementation | order | s/iter (median) | per-round medians | CPU s/iter | peak RSS | "
        "learn2learn time / this | float64 meta-gradient: max abs diff. / max abs (vs metadl loop) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, cfg in enumerate(configs):
        if i not in median:
            error = results[i][0].get("error", "?") if results[i] else "not run"
            rows.append(f"| {label(cfg)} | {cfg['order']} | failed: {error} | | | | | |")
            continue
        rounds = [statistics.median(r["wall"]) for r in ok[i]]
        cpu = statistics.median([t for r in ok[i] for t in r["cpu"]])
        peak = max(r["peak_rss"] for r in ok[i]) / 2**30
        speed = f"{median[l2l[cfg['order']]] / median[i]:.2f}x" if cfg["order"] in l2l else "n/a"
        ref = reference.get(cfg["order"])
        if ref is None:
            diff = "n/a"
        elif i == ref:
            diff = "(reference)"
        elif (tmp / f"grad{i}.npz").exists() and (tmp / f"grad{ref}.npz").exists():
            diff = f"{grad_difference(tmp / f'grad{i}.npz', tmp / f'grad{ref}.npz'):.1e}"
        else:
            diff = "check failed"
        rows.append(
            f"| {label(cfg)} | {cfg['order']} | {median[i]:.3f} | {min(rounds):.3f}-{max(rounds):.3f} | {cpu:.3f} | "
            f"{peak:.2f} GiB | {speed} | {diff} |"
        )
    return "\n".join(rows)


if __name__ == "__main__":
    main()
