"""Configs: every shipped config loads and builds; bad keys, values and overrides fail naming what is wrong."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch
import yaml

import metadl
import metadl.config as config_module
from metadl.algorithms import LEARNERS
from metadl.apps.detect.config import is_detection_config
from metadl.config import (
    ConfigError,
    config_from_dict,
    config_summary,
    config_to_dict,
    find_config,
    list_configs,
    load_config,
    resolve_device,
    save_config,
    shipped_config,
)
from metadl.data import DATASETS
from metadl.tasks import config_task_sources
from metadl.training.build import (
    build_learner,
    build_optimizer,
    build_scheduler,
    derive_seed,
    input_shape,
    load_dataset_split,
    load_split,
    make_sampler,
)
from metadl.training.data import is_task_source

CONFIGS = [shipped_config(name) for name in list_configs()]
# Detection configs (task: detection) have their own schema, tested in tests/unit/apps/test_detect_config.py.
EPISODIC = [path for path in CONFIGS if not is_detection_config(path)]
# The names are a contract: scripts, docs and `metadl bench` call them by name.
SHIPPED_NAMES = {
    "demo",
    "cluster_omniglot_lake",
    *(f"{algo}_omniglot_5w{k}s" for algo in ("fomaml", "maml", "protonet", "reptile") for k in (1, 5)),
    "maml_omniglot_20w1s",
    "maml_omniglot_20w5s",
    "metasgd_omniglot_5w1s",
    "protonet_omniglot_lake_20w1s",
    "ridge_omniglot_5w1s",
    "svm_omniglot_5w1s",
    "maml_sinusoid",
    "metasgd_sinusoid",
    "cnp_sinusoid",
    "anp_sinusoid",
    "anp_fertility",
    "cnp_fertility",
    "maml_fertility",
    "maml_step_functions",
    "detect_omniglot_scenes",
}


def minimal(**sections) -> dict:
    raw = {
        "dataset": {"name": "sinusoid"},
        "backbone": {"name": "mlp", "hidden": [8]},
        "learner": {"name": "maml"},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return raw


def write(tmp_path, raw) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_the_shipped_configs_are_the_expected_experiments():
    assert set(list_configs()) == SHIPPED_NAMES


def test_shipped_configs_live_in_the_package_and_resolve_by_stem_file_name_or_path(tmp_path, monkeypatch):
    package = Path(metadl.__file__).parent
    assert all(path.parent == package / "configs" for path in CONFIGS)
    monkeypatch.chdir(tmp_path)  # names resolve from the package, not from the working directory
    assert (
        find_config("maml_sinusoid")
        == find_config("maml_sinusoid.yaml")
        == package / "configs/maml_sinusoid.yaml"
    )
    own = tmp_path / "maml_sinusoid.yaml"  # a file on disk wins over the shipped name
    own.write_text("seed: 1\n")
    assert find_config("maml_sinusoid.yaml") == Path("maml_sinusoid.yaml")
    assert find_config(own) == own


@pytest.mark.parametrize("name", sorted(SHIPPED_NAMES))
def test_every_shipped_config_has_a_one_line_summary_from_its_header(name):
    summary = config_summary(name)
    assert 10 < len(summary) <= 80 and "\n" not in summary
    assert summary == shipped_config(name).read_text().splitlines()[0].lstrip("# ")[: len(summary)]


def test_shipped_configs_imported_from_an_archive_fail_naming_the_fix(tmp_path, monkeypatch):
    archive = tmp_path / "metadl.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("metadl/configs/demo.yaml", "seed: 0\n")
    monkeypatch.setattr(config_module.resources, "files", lambda _: zipfile.Path(archive, "metadl/"))
    with pytest.raises(ConfigError, match=r"imported from an archive .* install metadl from its wheel"):
        find_config("demo")


@pytest.mark.parametrize("path", EPISODIC, ids=lambda p: p.stem)
def test_every_shipped_config_loads_and_builds_its_learner(path):
    raw = yaml.safe_load(path.read_text())
    missing = [
        n
        for n in (raw["learner"]["name"], raw["dataset"]["name"])
        if n not in {*LEARNERS, *DATASETS, *config_task_sources()}
    ]
    if missing:
        pytest.skip(f"{missing} not registered yet")
    cfg = load_config(path)
    assert load_config(path) == cfg and config_from_dict(config_to_dict(cfg)) == cfg
    size = cfg.dataset.image_size or 28
    if is_task_source(cfg):
        if cfg.dataset.name == "fertility":
            pytest.importorskip("statsmodels")
        source = make_sampler(cfg, cfg.dataset.split, cfg.seed)
        x_shape, kind = input_shape(source), source.kind
    else:
        x_shape, kind = (1, size, size), "classification"
    torch.manual_seed(0)
    learner = build_learner(cfg, x_shape, kind)
    optimizer = build_optimizer(cfg, learner.parameters())
    build_scheduler(cfg, optimizer)
    assert sum(p.numel() for p in learner.parameters()) > 0
    assert find_config(path.stem) == path


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (
            minimal(trian={"iterations": 3}),
            r"unknown key 'trian' \(did you mean 'train'\?\); allowed keys here: augment, backbone, ",
        ),
        (minimal(train={"iteration": 3}), r"unknown key 'train.iteration' \(did you mean 'iterations'\?\)"),
        (
            minimal(learner={"inner_rl": 0.1}),
            r"unknown key 'learner.inner_rl' \(did you mean 'inner_lr'\?\); allowed keys "
            r"here: .*eval_inner_steps.*first_order",
        ),
        (minimal(backbone={"hiden": [8]}), r"unknown key 'backbone.hiden' \(did you mean 'hidden'\?\)"),
        (minimal(dataset={"name": "omniglot", "protocl": "lake"}), r"unknown key 'dataset.protocl'"),
        (minimal(dataset={"root": "x"}), r"dataset.root does not apply to task source 'sinusoid'; remove it"),
        (
            minimal(dataset={"name": "step_functions", "max_step": 3}),
            r"unknown key 'dataset.max_step' \(did you mean 'max_steps'\?\); allowed keys here: max_steps, noise",
        ),
        (
            minimal(dataset={"name": "step_functions", "max_steps": "three"}),
            r"dataset.max_steps = 'three' is not allowed: expected int",
        ),
        (minimal(dataset={"name": "sinusoid_2d", "k_shot": 3}), r"dataset.k_shot is set by the engine"),
        (minimal(dataset={"name": "fertility", "seed": 3}), r"dataset.seed is set by the engine"),
        (minimal(dataset={"name": "fertility", "image_size": 28}), r"dataset.image_size does not apply"),
        (
            minimal(dataset={"name": "fertility", "split": "dev"}),
            r"dataset.split = 'dev' is not allowed: choose one of \['test', 'train', 'val'\]",
        ),
        (minimal(dataset={"name": "fertility"}, eval={"split": "tst"}), r"eval.split = 'tst' is not allowed"),
        (minimal(dataset={"name": "task_files"}), r"dataset.root is required for task source 'task_files'"),
        (
            minimal(dataset={"name": "datasets", "root": "x", "kind": "ranking"}),
            r"dataset.kind = 'ranking' is not allowed: choose one of \['classification', 'regression'\]",
        ),
        (
            minimal(dataset={"name": "grouped_table"}),
            r"missing key dataset.table \(task source 'grouped_table'",
        ),
        (minimal(dataset={"name": "episodes"}), r"dataset.name = 'episodes' is not allowed: choose one of"),
        (minimal(learner={"n_way": 5}), r"learner.n_way is set by the engine"),
        (minimal(sampler={"ways": "five"}), r"sampler.ways = 'five' is not allowed: expected int, got str"),
        (minimal(sampler={"ways": 0}), r"sampler.ways = 0 is not allowed: must be >= 1"),
        (minimal(sampler={"shots": 1.5}), r"sampler.shots = 1.5 is not allowed: expected int, got float"),
        (minimal(sampler={"shots": True}), r"sampler.shots = True is not allowed: expected int"),
        (
            minimal(optimizer={"schedule": "cosin"}),
            r"optimizer.schedule = 'cosin' is not allowed: choose one of "
            r"\['cosine', 'none', 'step'\] \(did you mean 'cosine'\?\)",
        ),
        (minimal(optimizer={"lr": -1}), r"optimizer.lr = -1.0 is not allowed: must be > 0"),
        (minimal(optimizer={"momentum": 0.9}), r"momentum applies to sgd only"),
        (
            minimal(learner={"name": "mamll"}),
            r"learner.name = 'mamll' is not allowed: choose one of .*\(did you mean 'maml'\?\)",
        ),
        (
            minimal(learner={"first_order": "yes"}),
            r"learner.first_order = 'yes' is not allowed: expected bool",
        ),
        (minimal(learner={"inner_steps": 1.0}), r"learner.inner_steps = 1.0 is not allowed: expected int"),
        (
            minimal(backbone={"name": "conv5"}),
            r"backbone.name = 'conv5' is not allowed: choose one of \[.*'conv4'",
        ),
        (minimal(device="gpu"), r"device = 'gpu' is not allowed: choose auto, cpu, cuda, cuda:N or mps"),
        (minimal(train={"grad_clip": 0}), r"train.grad_clip = 0.0 is not allowed: must be > 0"),
        ({"backbone": {"name": "mlp"}, "learner": {"name": "maml"}}, r"missing section 'dataset'"),
        (minimal(dataset={"name": "image_folder"}), r"dataset.root is required for image_folder"),
        (["not", "a", "mapping"], r"a config is a mapping"),
    ],
    ids=lambda v: None,
)
def test_bad_configs_fail_at_load_naming_key_value_and_allowed(tmp_path, raw, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(write(tmp_path, raw))
    assert str(err.value).startswith(str(tmp_path / "c.yaml"))


def test_overrides_are_typed_by_the_field_they_set(tmp_path):
    path = write(tmp_path, minimal(dataset={"name": "image_folder", "root": "data"}))
    cfg = load_config(
        path,
        [
            "optimizer.lr=1",
            "learner.inner_lr=0.1",
            "train.grad_clip=10",
            "dataset.split=2024",
            "learner.first_order=true",
            "seed=7",
            "dataset.val_split=null",
            "backbone.hidden=[4, 4]",
        ],
    )
    assert cfg.optimizer.lr == 1.0 and isinstance(cfg.optimizer.lr, float)
    assert cfg.learner.kwargs["inner_lr"] == 0.1 and cfg.learner.kwargs["first_order"] is True
    assert cfg.train.grad_clip == 10.0 and cfg.dataset.split == "2024" and cfg.seed == 7
    assert cfg.dataset.val_split is None and cfg.backbone.kwargs["hidden"] == [4, 4]
    assert load_config(path, ["train.grad_clip=null"]).train.grad_clip is None


def test_a_new_component_name_drops_the_old_components_arguments(tmp_path):
    """`--set backbone.name=resnet12` on a Conv-4 config: Conv-4's `hidden` goes, overrides stay (any order)."""
    path = write(tmp_path, minimal())
    shipped = load_config(shipped_config("protonet_omniglot_lake_20w1s"), ["dataset.download=false"])
    assert shipped.backbone.kwargs == {"hidden": 64}
    cfg = load_config(
        shipped_config("protonet_omniglot_lake_20w1s"),
        ["backbone.channels=[8, 8, 8, 8]", "backbone.name=resnet12", "learner.name=protonet"],
    )
    assert cfg.backbone.name == "resnet12" and cfg.backbone.kwargs == {"channels": [8, 8, 8, 8]}
    assert cfg.learner.kwargs == shipped.learner.kwargs  # the same name keeps the file's arguments
    with pytest.raises(ConfigError, match=r"unknown key 'backbone.hidden'"):
        load_config(path, ["backbone.name=resnet12", "backbone.hidden=[8]"])


def test_augment_sections_can_be_set_from_the_command_line(tmp_path):
    """`--set augment.train=[...]` is read as YAML, as in a config file, then checked like one."""
    path = write(tmp_path, minimal())
    spec = "[{name: affine, degrees: 10, scale: [0.9, 1.1]}, {name: elastic, alpha: 1.0}]"
    cfg = load_config(path, [f"augment.train={spec}", "augment.classes={rotations: [0, 180]}"])
    assert cfg.augment.train == [
        {"name": "affine", "degrees": 10, "scale": [0.9, 1.1]},
        {"name": "elastic", "alpha": 1.0},
    ]
    assert cfg.augment.classes == {"rotations": [0, 180]}
    assert load_config(path, ["augment.train=[]"]).augment.augments is False
    with pytest.raises(
        ConfigError, match=r"augment.train = '\[\{name: affine' is not allowed: not a YAML value"
    ):
        load_config(path, ["augment.train=[{name: affine"])
    with pytest.raises(ConfigError, match=r"augment.train\[0\] transform 'affine': unknown key 'degree'"):
        load_config(path, ["augment.train=[{name: affine, degree: 10}]"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("learner.inner_lr", r"bad override 'learner.inner_lr': write KEY=VALUE"),
        ("a.b.c=1", r"bad override 'a.b.c=1'"),
        ("train.iterations=many", r"train.iterations = 'many' is not allowed: expected int"),
        ("train.iteration=5", r"unknown key 'train.iteration' \(did you mean 'iterations'\?\)"),
        ("learner.inner_lr=fast", r"learner.inner_lr = 'fast' is not allowed: expected float, got str"),
        ("seed=null", r"seed = None is not allowed: a value of type int is required"),
    ],
)
def test_bad_overrides_fail_naming_the_key(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, minimal()), [override])


def test_saved_config_spells_out_defaults_and_reads_back_equal(tmp_path):
    cfg = load_config(write(tmp_path, minimal(learner={"inner_lr": 0.05})))
    save_config(cfg, tmp_path / "resolved.yaml")
    text = (tmp_path / "resolved.yaml").read_text()
    assert "checkpoint_every: 100" in text and "hidden: [8]" in text
    assert load_config(tmp_path / "resolved.yaml") == cfg


def test_missing_and_invalid_files_are_named(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    (tmp_path / "bad.yaml").write_text("dataset: [unclosed\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match=r"no shipped config of that name; shipped: \[.*'demo'"):
        find_config("no_such_experiment")


def test_devices_resolve_in_one_place():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available here"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="choose auto, cpu"):
        resolve_device("tpu")


def test_sinusoid_splits_are_independent_streams():
    cfg = config_from_dict(minimal(sampler={"shots": 5, "queries": 5}))
    train, test = make_sampler(cfg, "train", 0), make_sampler(cfg, "test", 0)
    assert not torch.equal(train.sample_batch(2).support_x, test.sample_batch(2).support_x)
    again = make_sampler(cfg, "test", 0)
    assert torch.equal(make_sampler(cfg, "test", 0).sample_batch(3).query_y, again.sample_batch(3).query_y)
    assert derive_seed(0, "train") != derive_seed(1, "train")


def test_sinusoid_tasks_have_no_dataset_split_to_load():
    cfg = config_from_dict(minimal())
    assert load_split(cfg, "train") is None
    with pytest.raises(ConfigError, match="'sinusoid' is a task source: it has no dataset split to load"):
        load_dataset_split(cfg, "train")
