"""A few hundred generated bad inputs through the CLI, in-process: every one exits 2 with one line on
stderr and no traceback (issue 12). Seeded, so a failure names a case that reproduces."""

from __future__ import annotations

import json
import random
import shutil
import struct
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from cli_runs import TinyRun, train_tiny_run

from metadl.cli import main
from metadl.config import ConfigError, config_from_dict
from metadl.training.checkpoint import save_checkpoint

SEED = 12
Case = tuple[str, Callable[[Path], list[str]]]  # (name, build the input in a folder -> argv)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> TinyRun:
    return train_tiny_run(tmp_path_factory.mktemp("fuzz"))


BAD_VALUES = [
    None, "", "abc", ".nan", float("nan"), float("inf"), -1, 0, -0.5, 10**12, 10**30, [], [1, 2], {"a": 1},
    True, "1e9999", "-inf", [float("nan")], [10**13], "🙂", "\x00",
]  # fmt: skip
SECTION_KEYS = {
    "sampler": ["ways", "shots", "queries", "meta_batch"],
    "optimizer": ["name", "lr", "weight_decay", "momentum", "schedule", "warmup", "step_size", "gamma"],
    "train": ["iterations", "val_every", "checkpoint_every", "grad_clip", "val_episodes"],
    "eval": ["episodes", "ways", "shots", "queries", "split", "seed"],
    "dataset": ["name", "root", "split", "image_size", "channels"],
    "backbone": ["name", "hidden"],
    "learner": ["name", "distance"],
}
HUGE = {("sampler", "ways"), ("sampler", "shots"), ("sampler", "queries"), ("eval", "ways"), ("eval", "shots"),
        ("dataset", "image_size"), ("backbone", "hidden")}  # fmt: skip


def config_cases(tiny: TinyRun, rng: random.Random) -> list[Case]:
    def bad_value(section: str, key: str, value: object) -> Case:
        def build(folder: Path) -> list[str]:
            raw = json.loads(json.dumps(tiny.raw))
            raw.setdefault(section, {})[key] = value
            (folder / "c.yaml").write_text(yaml.safe_dump(raw, allow_unicode=True))
            return ["train", str(folder / "c.yaml"), "--out", str(folder / "run"), "--no-progress"]

        return f"config {section}.{key}={value!r}", build

    def raw_text(name: str, text: bytes) -> Case:
        def build(folder: Path) -> list[str]:
            (folder / "c.yaml").write_bytes(text)
            return ["train", str(folder / "c.yaml"), "--out", str(folder / "run"), "--no-progress"]

        return f"config file {name}", build

    def override(text: str) -> Case:
        def build(folder: Path) -> list[str]:
            return ["train", str(tiny.config), "--out", str(folder / "run"), "--no-progress", "--set", text]

        return f"--set {text!r}", build

    cases: list[Case] = []
    for section, keys in SECTION_KEYS.items():
        for key in keys:
            values = [v for v in BAD_VALUES if not _valid(tiny.raw, section, key, v)]
            cases += [bad_value(section, key, v) for v in rng.sample(values, min(6, len(values)))]
    for section, key in HUGE:
        cases.append(bad_value(section, key, 10**9 if key != "hidden" else [10**11]))
    cases += [
        bad_value(section, f"unknown_{i}", 1)
        for i, section in enumerate(["sampler", "train", "eval", "optimizer"])
    ]
    yaml_text = yaml.safe_dump(tiny.raw).encode()
    cases += [
        raw_text("empty", b""),
        raw_text("a list", b"- 1\n- 2\n"),
        raw_text("a string", b"hello"),
        raw_text("unclosed bracket", b"dataset: {name: image_folder\n"),
        raw_text("tab indentation", b"dataset:\n\tname: x\n"),
        raw_text("not utf-8", yaml_text + b"\n# \xff\xfe\xfd"),
        raw_text("binary", bytes(rng.randrange(256) for _ in range(200))),
        raw_text("truncated", yaml_text[: len(yaml_text) // 2]),
        raw_text("python tag", b"!!python/object/apply:os.system ['true']"),
        raw_text("anchors bomb", b"a: &a [1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"),
    ]  # fmt: skip
    for text in ["seed", "=3", "a.b.c=1", "seed=[1", "optimizer=3", "learner.inner_lr=.nan", "optimizer.lr=.inf",
                 "sampler.ways=abc", "dataset.image_size=60000", "device=tpu", "optimizer.name=rmsprop",
                 "train.iterations=-5", "dataset.root=/nonexistent/x", "backbone.hidden=[1e12]"]:  # fmt: skip
        cases.append(override(text))
    return cases


def _valid(raw: dict, section: str, key: str, value: object) -> bool:
    """Whether the config validates with this value (the fuzz wants only inputs that must fail: a valid
    config could train for hours), unless the value fails later, on the data, by design."""
    if (section, key) in {("dataset", "root"), ("dataset", "split")} and isinstance(value, str):
        return False
    changed = json.loads(json.dumps(raw))
    changed.setdefault(section, {})[key] = value
    try:
        config_from_dict(changed)
    except ConfigError:
        return False
    return True


def run_folder_cases(tiny: TinyRun, rng: random.Random) -> list[Case]:
    def broken(name: str, change: Callable[[Path], None], target: str = "") -> Case:
        def build(folder: Path) -> list[str]:
            run = folder / "run"
            shutil.copytree(tiny.run, run)
            change(run)
            which = "last" if "last.ckpt" in name else "best"
            return ["eval", str(run / target), "--no-progress", "--episodes", "2", "--checkpoint", which]

        return f"run folder: {name}", build

    def garble(path: str, how: str) -> Callable[[Path], None]:
        def change(run: Path) -> None:
            data = (run / path).read_bytes()
            if how == "truncate":
                (run / path).write_bytes(data[: rng.randrange(len(data))])
            elif how == "flip":
                pos = rng.randrange(len(data))
                (run / path).write_bytes(data[:pos] + bytes([data[pos] ^ 0xFF]) + data[pos + 1 :])
            elif how == "empty":
                (run / path).write_bytes(b"")
            else:
                (run / path).write_bytes(bytes(rng.randrange(256) for _ in range(300)))

        return change

    cases = [broken(f"{p} {how} #{i}", garble(p, how)) for p in ("best.ckpt", "last.ckpt") for how in ("truncate", "flip", "empty", "random") for i in range(4)]  # fmt: skip
    payloads = [{}, {"config": 1}, {"config": {}, "x_shape": [1], "model": {}, "iteration": 0}, [1, 2], "text",
                {"config": {"dataset": {}}, "x_shape": "x", "model": 3, "iteration": 0}]  # fmt: skip
    for i, payload in enumerate(payloads):
        cases.append(broken(f"valid header, payload #{i}", lambda run, p=payload: save_checkpoint(run / "best.ckpt", {"x": p} if not isinstance(p, dict) else p)))  # fmt: skip
    for shape in [[0], [10**9], [-1, 8], ["a"], [1, 1, 1, 1, 1, 1]]:

        def change(run: Path, shape=shape) -> None:
            from metadl.training.checkpoint import load_checkpoint

            ckpt = load_checkpoint(run / "best.ckpt")
            ckpt["x_shape"] = shape
            save_checkpoint(run / "best.ckpt", ckpt)

        cases.append(broken(f"x_shape {shape}", change))
    cases += [
        broken("no checkpoints", lambda run: [(run / n).unlink() for n in ("best.ckpt", "last.ckpt")]),
        broken("best.ckpt is a folder", lambda run: ((run / "best.ckpt").unlink(), (run / "best.ckpt").mkdir())),
        broken("config.yaml garbage", lambda run: (run / "config.yaml").write_bytes(b"\xff\x00{[")),
        broken("config.yaml of another run", lambda run: (run / "config.yaml").write_text((run / "config.yaml").read_text().replace("seed: 1", "seed: 5"))),
        broken("checkpoint that is missing", lambda run: None, "nope.ckpt"),
        broken("a text file as checkpoint", lambda run: (run / "x.ckpt").write_text("hello"), "x.ckpt"),
    ]  # fmt: skip
    return cases


def model_cases(tiny: TinyRun, rng: random.Random) -> list[Case]:
    def broken(name: str, change: Callable[[Path], None]) -> Case:
        def build(folder: Path) -> list[str]:
            model = folder / "model"
            shutil.copytree(tiny.run / "model", model)
            change(model)
            return ["predict", str(model), "--support", str(tiny.support), "--query", str(tiny.query)]

        return f"model: {name}", build

    def edit(change: Callable[[dict], None]) -> Callable[[Path], None]:
        def apply(model: Path) -> None:
            doc = json.loads((model / "metadl.json").read_text())
            change(doc)
            (model / "metadl.json").write_text(json.dumps(doc))

        return apply

    hostile = [
        lambda d: d["spec"]["backbone"].update(hidden=[10_000_000]),
        lambda d: d["spec"]["backbone"].update(hidden=[16] * 5000),
        lambda d: d["spec"]["backbone"].update(in_features=10**15),
        lambda d: d["spec"]["learner"].update(n_way=10**9),
        lambda d: d["spec"]["backbone"].update(hidden=-3),
        lambda d: d["spec"]["backbone"].update(name="resnet999"),
        lambda d: d["spec"]["learner"].update(name=["x"]),
        lambda d: d["spec"].update(extra=1),
        lambda d: d.update(spec=[1, 2]),
        lambda d: d.update(preprocessing={"image_size": 60000}),
        lambda d: d.update(preprocessing={"image_size": -1}),
        lambda d: d.update(preprocessing={"image_size": 8, "channels": 7}),
        lambda d: d.update(preprocessing={"image_size": 8, "mean": [1, 2, 3]}),
        lambda d: d.update(preprocessing=None),
        lambda d: d.update(preprocessing="x"),
        lambda d: d.update(format_version="1"),
        lambda d: d.update(format_version=99),
        lambda d: d.update(format="other"),
        lambda d: d["weights"].update(file="../../etc/passwd"),
        lambda d: d["weights"].update(file="/etc/passwd"),
        lambda d: d["weights"].update(bytes=-1),
        lambda d: d["weights"].update(bytes="x"),
        lambda d: d["weights"].update(sha256=0),
        lambda d: d.update(weights=None),
        lambda d: d.update(metadata=[]),
        lambda d: d.pop("spec"),
        lambda d: d["spec"]["backbone"].update(hidden=[[[[[[1]]]]]]),
    ]  # fmt: skip
    cases = [broken(f"hostile metadl.json #{i}", edit(change)) for i, change in enumerate(hostile)]
    for i in range(12):

        def garble(model: Path, i=i) -> None:
            name = ("metadl.json", "weights.safetensors")[i % 2]
            data = (model / name).read_bytes()
            cut = rng.randrange(1, len(data))
            (model / name).write_bytes(
                data[:cut] if i % 3 else data[:cut] + bytes([data[cut] ^ 0x55]) + data[cut + 1 :]
            )

        cases.append(broken(f"garbled file #{i}", garble))
    cases += [
        broken("deep nesting", lambda m: (m / "metadl.json").write_text('{"a": ' + "[" * 50_000 + "]" * 50_000 + "}")),
        broken("NaN in JSON", lambda m: (m / "metadl.json").write_text((m / "metadl.json").read_text().replace('"metadata": {', '"metadata": {"x": NaN, '))),
        broken("not utf-8", lambda m: (m / "metadl.json").write_bytes(b"\xff\xfe" + (m / "metadl.json").read_bytes())),
        broken("JSON list", lambda m: (m / "metadl.json").write_text("[]")),
        broken("no weights", lambda m: (m / "weights.safetensors").unlink()),
        broken("weights a folder", lambda m: ((m / "weights.safetensors").unlink(), (m / "weights.safetensors").mkdir())),
        broken("no metadl.json", lambda m: (m / "metadl.json").unlink()),
        broken("metadl.json a folder", lambda m: ((m / "metadl.json").unlink(), (m / "metadl.json").mkdir())),
    ]  # fmt: skip
    return cases


def png_with_size(width: int, height: int) -> bytes:
    """A PNG whose header declares ``width x height`` (its data is for 1 x 1)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))  # noqa: E731

    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00\x00"))
        + chunk(b"IEND", b"")
    )


def image_cases(tiny: TinyRun, rng: random.Random) -> list[Case]:
    good = (tiny.query / "q.png").read_bytes()
    contents = {
        "empty": b"",
        "text": b"hello, not an image",
        "truncated": good[: len(good) // 2],
        "header only": good[:16],
        "huge declared size": png_with_size(100_000, 100_000),
        "past the pixel limit": png_with_size(8000, 8000),
        "zero width": png_with_size(0, 5),
    }
    for i in range(6):
        contents[f"random bytes #{i}"] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
        contents[f"png signature, random body #{i}"] = good[:8] + bytes(
            rng.randrange(256) for _ in range(200)
        )

    def bad_query(name: str, data: bytes, suffix: str) -> Case:
        def build(folder: Path) -> list[str]:
            (folder / "q").mkdir()
            (folder / "q" / f"bad{suffix}").write_bytes(data)
            return ["predict", str(tiny.run), "--support", str(tiny.support), "--query", str(folder / "q")]

        return f"query image {name} ({suffix})", build

    def bad_support(name: str, data: bytes) -> Case:
        def build(folder: Path) -> list[str]:
            shutil.copytree(tiny.support, folder / "s")
            (folder / "s" / "c1" / "bad.png").write_bytes(data)
            return ["predict", str(tiny.run), "--support", str(folder / "s"), "--query", str(tiny.query)]

        return f"support image {name}", build

    cases = [bad_query(n, d, s) for n, d in contents.items() for s in (".png", ".jpg")]
    cases += [bad_support(n, d) for n, d in contents.items()]

    def layout(name: str, make: Callable[[Path], None]) -> Case:
        def build(folder: Path) -> list[str]:
            shutil.copytree(tiny.support, folder / "s")
            make(folder / "s")
            return ["predict", str(tiny.run), "--support", str(folder / "s"), "--query", str(tiny.query)]

        return f"support layout: {name}", build

    cases += [
        layout("one class", lambda s: [shutil.rmtree(s / c) for c in ("c1", "c2")]),
        layout("no classes", lambda s: [shutil.rmtree(s / c) for c in ("c0", "c1", "c2")]),
        layout("loose image", lambda s: shutil.copy(s / "c0" / "0.png", s / "loose.png")),
        layout("empty class", lambda s: (s / "empty").mkdir()),
        layout("link to root", lambda s: (s / "loop").symlink_to(s, target_is_directory=True)),
        layout("link outside", lambda s: (s / "etc").symlink_to("/etc", target_is_directory=True)),
        layout("image link outside", lambda s: (s / "c0" / "x.png").symlink_to("/etc/hostname")),
        layout("missing", lambda s: shutil.rmtree(s)),
    ]  # fmt: skip
    return cases


def archive_cases(tiny: TinyRun, rng: random.Random) -> list[Case]:
    def zips(name: str, write: Callable[[Path], None]) -> Case:
        def build(folder: Path) -> list[str]:
            root = folder / "omniglot"
            root.mkdir()
            for which in ("background", "evaluation"):
                write(root / f"images_{which}.zip")
            return ["eval", str(tiny.run / "model"), "--dataset", "omniglot", "--no-progress", "--episodes", "2",
                    "--set", f"dataset.root={root}", "--set", "dataset.protocol=lake", "--split", "evaluation",
                    "--set", "dataset.progress=false"]  # fmt: skip

        return f"archive: {name}", build

    def members(entries: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            with zipfile.ZipFile(path, "w", compression=compression) as z:
                for member, data in entries.items():
                    z.writestr(member, data)

        return write

    def declared(size: int) -> Callable[[Path], None]:
        def write(path: Path) -> None:
            members({"images_x/a.bin": b"x" * 100})(path)
            data = bytearray(path.read_bytes())
            at = data.find(b"PK\x01\x02")
            data[at + 24 : at + 28] = struct.pack("<I", size)
            path.write_bytes(bytes(data))

        return write

    cases = [
        zips("not a zip", lambda p: p.write_bytes(b"not a zip at all")),
        zips("empty file", lambda p: p.write_bytes(b"")),
        zips("random bytes", lambda p: p.write_bytes(bytes(rng.randrange(256) for _ in range(1000)))),
        zips("zip slip", members({"../evil.txt": b"x"})),
        zips("absolute path", members({"/tmp/evil.txt": b"x"})),
        zips("bomb", members({"images_background/zeros.bin": bytes(8 << 20)})),
        zips("declares 4 GiB", declared(0xF000_0000)),
        zips("lies about its size", declared(10)),
        zips("wrong layout", members({"other/readme.txt": b"hello"})),
        zips("empty archive", members({})),
        zips("bad png inside", members({"images_background/A/character01/01.png": b"nope"})),
    ]  # fmt: skip
    return cases


def all_cases(tiny: TinyRun) -> list[Case]:
    rng = random.Random(SEED)
    return [
        *config_cases(tiny, rng),
        *run_folder_cases(tiny, rng),
        *model_cases(tiny, rng),
        *image_cases(tiny, rng),
        *archive_cases(tiny, rng),
    ]


def test_every_bad_input_exits_2_with_one_line_and_no_traceback(tiny, tmp_path, capsys):
    cases = all_cases(tiny)
    assert len(cases) >= 250
    failures = []
    for i, (name, build) in enumerate(cases):
        folder = tmp_path / f"case{i}"
        folder.mkdir()
        argv = build(folder)
        capsys.readouterr()
        try:
            code = main(argv)
        except SystemExit as exit_:  # argparse
            code = exit_.code
        except BaseException as err:  # noqa: BLE001 - the point is to report any escape
            failures.append(f"{name}: raised {type(err).__name__}: {err}"[:300])
            continue
        err = capsys.readouterr().err
        lines = err.strip().splitlines()
        if code != 2 or len(lines) != 1 or "Traceback" in err:
            failures.append(f"{name}: exit {code}, stderr {err[:300]!r}")
    assert not failures, f"{len(failures)} of {len(cases)} cases:\n" + "\n".join(failures)
