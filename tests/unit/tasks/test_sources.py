"""Task sources: the pool samplers as sources, task files, grouped tables, datasets as tasks, the registry."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch

from metadl.data.base import FewShotDataset
from metadl.tasks import (
    DatasetSource,
    EpisodeSampler,
    GroupedTable,
    GroupedTableSource,
    NamedDataset,
    NamedTask,
    SinusoidSampler,
    TaskFileSource,
    TaskSourceError,
    VariableEpisodeSampler,
    create_task_source,
    dataset_folder,
    list_task_sources,
)


def same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def tensors(task):
    return (task.support_x, task.support_y, task.query_x, task.query_y)


# ---- the pool samplers, now sources --------------------------------------------------------------------


def pool(num_classes=10):
    """Example i of class c holds 1000 * c + i, so a gathered example names its class."""
    counts = [8 + c % 3 for c in range(num_classes)]
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(counts)])
    within = torch.cat([torch.arange(n) for n in counts])
    return FewShotDataset(
        (1000 * labels + within).float().view(-1, 1), labels, [f"c{c}" for c in range(num_classes)]
    )


def digest(ts):
    h = hashlib.sha256()
    for t in ts:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def test_sampler_streams_equal_the_streams_recorded_before_they_became_sources():
    """Digests recorded with main's samplers (before this change): checkpoints resume the same episodes."""
    e = EpisodeSampler(pool(), n_way=5, k_shot=2, n_query=3, seed=3)
    b, t = e.sample_batch(4), e.sample()
    assert digest([*tensors(b), t.support_x, t.query_x]) == "5774b58d742e4585"
    v = VariableEpisodeSampler(pool(), min_ways=2, max_ways=6, seed=3)
    assert digest([x for _ in range(3) for x in tensors(v.sample())]) == "e5b901fa7e6047a1"
    s = SinusoidSampler(k_shot=3, n_query=4, seed=3)
    b, t = s.sample_batch(4), s.sample()
    assert digest([*tensors(b), t.support_x, t.query_y]) == "c61b8649c8cc6ed2"


def test_episode_sample_names_the_drawn_classes_in_label_order():
    ds = pool()
    task = EpisodeSampler(ds, n_way=5, k_shot=2, n_query=1, seed=0).sample()
    assert isinstance(task, NamedTask) and len(task.classes) == 5
    for label, name in enumerate(task.classes):
        assert {f"c{int(v) // 1000}" for v in task.support_x[task.support_y == label].flatten()} == {name}
    assert same(
        tensors(task), tensors(EpisodeSampler(ds, n_way=5, k_shot=2, n_query=1, seed=0).sample_batch(1)[0])
    )


def test_variable_episodes_name_classes_and_refuse_to_stack_unequal_shapes():
    v = VariableEpisodeSampler(pool(), min_ways=2, max_ways=6, seed=1)
    task = v.sample()
    for label, name in enumerate(task.classes):
        assert {f"c{int(x) // 1000}" for x in task.query_x[task.query_y == label].flatten()} == {name}
    assert len(v.sample_batch(1)) == 1 and not v.batchable
    with pytest.raises(TaskSourceError, match="differ in shape, draw them with sample"):
        v.sample_batch(6)


# ---- task files --------------------------------------------------------------------------------------


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def task_folder(root, labels=("cat", "dog", "eel"), per_label=6, tasks=("pets", "bugs")):
    """One CSV per task; each task has its own label names (prefixed by the task); text = '<label> <i>'."""
    for task in tasks:
        rows = [f"{task}-{label} {i},{task}-{label}" for label in labels for i in range(per_label)]
        write(root / f"{task}.csv", "text,label\n" + "\n".join(rows) + "\n")
    return root


def test_task_files_same_seed_same_tasks_and_another_seed_others(tmp_path):
    root = task_folder(tmp_path)
    a, b = (
        TaskFileSource(root, n_way=2, k_shot=2, n_query=2, seed=5),
        TaskFileSource(root, n_way=2, k_shot=2, n_query=2, seed=5),
    )
    c = TaskFileSource(root, n_way=2, k_shot=2, n_query=2, seed=6)
    ta, tb, tc = ([s.sample() for _ in range(6)] for s in (a, b, c))
    assert all(same(tensors(x), tensors(y)) and x.classes == y.classes for x, y in zip(ta, tb, strict=True))
    assert not all(same(tensors(x), tensors(y)) for x, y in zip(ta, tc, strict=True))


def test_task_files_resume_from_state_continues_the_stream(tmp_path):
    root = task_folder(tmp_path)
    a = TaskFileSource(root, n_way=2, k_shot=1, n_query=3, seed=0)
    a.sample()
    state = a.state_dict()
    rest = [a.sample() for _ in range(4)]
    b = TaskFileSource(root, n_way=2, k_shot=1, n_query=3, seed=99)
    b.load_state_dict(state)
    assert all(
        same(tensors(x), tensors(y)) for x, y in zip(rest, [b.sample() for _ in range(4)], strict=True)
    )


def test_each_task_keeps_its_own_label_space_and_texts_match_labels(tmp_path):
    source = TaskFileSource(task_folder(tmp_path), k_shot=2, n_query=1, seed=0)  # all-way: 3 labels each
    assert source.names == ("bugs", "pets") and source.batchable
    for name in source.names:
        task = source.sample(name)
        assert task.classes == tuple(f"{name}-{label}" for label in ("cat", "dog", "eel"))
        assert task.support_x.dtype == torch.long and task.support_x.shape == (6, 1)
        for text, y in zip(
            task.support_texts() + task.query_texts(), torch.cat([task.support_y, task.query_y]), strict=True
        ):
            assert text.split()[0] == task.classes[int(y)]
        assert len(set(task.support_texts()) & set(task.query_texts())) == 0


def test_n_way_draws_a_subset_of_a_tasks_labels_and_batches(tmp_path):
    source = TaskFileSource(task_folder(tmp_path), n_way=2, k_shot=3, n_query=2, seed=0)
    batch = source.sample_batch(5)
    assert batch.support_x.shape == (5, 6, 1) and batch.query_y.tolist()[0] == [0, 0, 1, 1]
    task = source.sample()
    assert len(task.classes) == 2 and set(task.classes) <= {f"{task.name}-{x}" for x in ("cat", "dog", "eel")}


def arsc_like(root):
    """ARSC's layout: <domain>.t2.{train,dev,test} of text<TAB>label, plus files that are not tasks."""
    write(root / "kitchen.t2.train", "good pan\t1\nbad pan\t-1\nfine pot\t1\nrusty pot\t-1\n")
    write(root / "kitchen.t2.dev", "ok\t0\n")
    write(root / "kitchen.t2.test", "great knife\t1\ndull knife\t-1\nnice lid\t1\n")
    write(root / "SHA256SUMS", "abc  kitchen.t2.train\n")
    write(root / "README.md", "# not a task\n")
    return root


def test_fixed_support_and_query_files_are_used_verbatim_in_file_order(tmp_path):
    source = TaskFileSource(arsc_like(tmp_path), format="tsv", support="train", query="test", seed=0)
    assert source.names == ("kitchen.t2",) and not source.batchable
    task = source.sample()
    assert task.classes == ("-1", "1")
    assert task.support_texts() == ["good pan", "bad pan", "fine pot", "rusty pot"]
    assert task.support_y.tolist() == [1, 0, 1, 0]
    assert task.query_texts() == ["great knife", "dull knife", "nice lid"] and task.query_y.tolist() == [
        1,
        0,
        1,
    ]


def test_jsonl_and_csv_numeric_features(tmp_path):
    lines = [{"x": [float(i), 1.0], "y": i % 2} for i in range(6)]
    write(tmp_path / "a.jsonl", "\n".join(json.dumps(r) for r in lines) + "\n")
    write(tmp_path / "b.csv", "f1,f2,y\n" + "".join(f"{i},{-i},{'ab'[i % 2]}\n" for i in range(6)))
    source = TaskFileSource(
        tmp_path, k_shot=2, n_query=1, feature_columns=["x"], label_column="y", include=["a"]
    )
    task = source.sample()
    assert task.support_x.dtype == torch.float32 and task.support_x.shape == (4, 2) and source.texts is None
    assert ((task.support_x[:, 0] % 2) == task.support_y.float()).all()  # label i % 2 travels with x = [i, 1]
    csv_source = TaskFileSource(
        tmp_path, k_shot=2, n_query=1, feature_columns=["f1", "f2"], label_column="y", include=["b"]
    )
    x = csv_source.sample().support_x
    assert torch.equal(x[:, 1], -x[:, 0])


def test_include_and_exclude_hold_tasks_out(tmp_path):
    root = task_folder(tmp_path, tasks=("books", "dvd", "toys"))
    assert TaskFileSource(root, exclude=["books", "d*"]).names == ("toys",)
    assert TaskFileSource(root, include=["b*", "dvd"]).names == ("books", "dvd")


@pytest.mark.parametrize(
    ("setup", "kwargs", "message"),
    [
        (lambda root: None, {"root_suffix": "missing"}, "does not exist"),
        (lambda root: None, {}, "no task files in"),
        (lambda root: write(root / "README.md", "hi"), {}, "no task files in"),
        (
            lambda root: write(root / "t.csv", b"text,label\nok,a\nbad \xff byte,a\n"),
            {},
            r"t\.csv line 3: byte 0xff is not UTF-8",
        ),
        (
            lambda root: write(root / "t.csv", "words,label\nok,a\n"),
            {},
            r"missing column 'text'.*\['words', 'label'\].*text_column",
        ),
        (
            lambda root: write(root / "t.csv", "text,label\na,x\nb,x\nc,y\n"),
            {"k_shot": 1, "n_query": 1},
            r"task 't': label 'y' has 1 examples but k_shot \+ n_query = 2",
        ),
        (
            lambda root: write(root / "t.jsonl", '{"x": [1, 2], "label": "a"}\n{"x": [1], "label": "a"}\n'),
            {"feature_columns": ["x"]},
            r"t\.jsonl line 2: 1 features but line 1 has 2",
        ),
        (
            lambda root: [
                write(root / "a.csv", "f,label\n1,a\n2,a\n"),
                write(root / "b.jsonl", '{"f": [1, 2], "label": "a"}\n{"f": [3, 4], "label": "a"}\n'),
            ],
            {"feature_columns": ["f"]},
            "inconsistent feature widths: b.jsonl has 2 features, a.csv has 1",
        ),
        (
            lambda root: write(root / "t.csv", "f,label\n1,a\nnan,a\n"),
            {"feature_columns": ["f"]},
            r"line 3: 'f' = 'nan' is not a finite number",
        ),
        (
            lambda root: write(root / "t.jsonl", '{"text": "a", "label": "x"}\n{oops\n'),
            {},
            r"t\.jsonl line 2: not valid JSON",
        ),
        (
            lambda root: write(root / "t.tsv", "a\tx\nb\tx\ty\n"),
            {},
            r"t\.tsv line 2: 3 tab-separated fields, expected 2",
        ),
        (
            lambda root: write(root / "t.csv", "text,label\n" + "a,x\n" * 50),
            {"max_file_bytes": 100},
            r"above max_file_bytes=100",
        ),
        (
            lambda root: write(root / "t.csv", "text,label\n" + "a,x\n" * 50),
            {"max_rows": 10},
            r"more than max_rows=10 rows",
        ),
        (
            lambda root: write(root / "t.csv", "text,label\n,x\n"),
            {},
            r"t\.csv line 2: missing or empty 'text'",
        ),
        (
            lambda root: write(root / "t.csv", "text,label\na,x\nb,y\n"),
            {"n_way": 3},
            r"task 't' has 2 labels \['x', 'y'\] but n_way = 3",
        ),
        (
            lambda root: arsc_like(root),
            {"format": "tsv", "support": "train", "query": "dev"},
            r"query labels \['0'\] of kitchen.t2.dev never occur",
        ),
        (
            lambda root: write(root / "k.train.csv", "text,label\na,x\n"),
            {"support": "train", "query": "test"},
            r"task 'k' has k.train.csv but no 'test' file",
        ),
        (
            lambda root: arsc_like(root),
            {"format": "tsv"},
            r"has task files \(\['kitchen.t2'\]\) but none with split None",
        ),
    ],
)
def test_task_file_errors_are_one_line_and_name_the_fix(tmp_path, setup, kwargs, message):
    setup(tmp_path)
    root = tmp_path / kwargs.pop("root_suffix", "")
    with pytest.raises(TaskSourceError, match=message) as err:
        TaskFileSource(root, **{"k_shot": 1, "n_query": 0, **kwargs})
    assert "\n" not in str(err.value)


def test_unknown_task_name_lists_the_tasks(tmp_path):
    with pytest.raises(TaskSourceError, match=r"has no task 'cars'; its tasks are bugs, pets"):
        TaskFileSource(task_folder(tmp_path)).sample("cars")


@pytest.mark.data
def test_real_arsc_domain_reads_as_fixed_and_sampled_tasks(shared_data):
    root = shared_data / "arsc_source"
    if not root.is_dir():
        pytest.skip(f"{root} not found")
    fixed = TaskFileSource(root, format="tsv", support="train", query="test", include=["apparel.*"])
    assert fixed.names == ("apparel.t2", "apparel.t4", "apparel.t5")
    task = fixed.sample("apparel.t2")
    with open(root / "apparel.t2.test", encoding="utf-8") as f:
        assert task.query_texts() == [line.split("\t")[0] for line in f.read().splitlines()]
    assert task.classes == ("-1", "1")
    sampled = TaskFileSource(
        root, format="tsv", split="train", n_way=2, k_shot=5, n_query=5, include=["apparel.*"], seed=0
    )
    assert sampled.sample_batch(4).support_x.shape == (4, 10, 1)


# ---- grouped tables -------------------------------------------------------------------------------------


def ratings(users=("u1", "u2", "u3"), sizes=(12, 8, 3)):
    """User u's rows: x = [row id], y = row id / 100, time = minus the row id (so the first row is the latest)."""
    keys = [u for u, n in zip(users, sizes, strict=True) for _ in range(n)]
    rows = torch.arange(len(keys), dtype=torch.float32)
    return GroupedTable.from_columns(keys, x=rows.view(-1, 1), y=rows / 100, time=-rows.double())


def test_grouped_split_by_count_is_disjoint_within_the_group_and_drops_small_groups():
    table = ratings()
    source = GroupedTableSource(table, k_shot=4, n_query=3, seed=0)
    assert source.names == ("u1", "u2") and source.batchable  # u3 has 3 rows < 4 + 3
    for _ in range(10):
        task = source.sample()
        ids = torch.cat([task.support_x, task.query_x]).flatten().long()
        assert len(ids.unique()) == 7 and set(table.group_names[int(g)] for g in table.groups[ids]) == {
            task.name
        }
        assert torch.equal(task.support_y, task.support_x / 100) and task.support_y.shape == (4, 1)


def test_grouped_split_by_fraction_uses_the_rest_as_support():
    task = GroupedTableSource(ratings(), query_fraction=0.25, seed=0).sample("u1")
    assert (len(task.support_x), len(task.query_x)) == (9, 3)
    assert not GroupedTableSource(ratings(), query_fraction=0.25).batchable


def test_grouped_last_query_holds_the_latest_rows_by_time():
    task = GroupedTableSource(ratings(), n_query=3, query_order="last", seed=0).sample("u2")
    assert sorted(task.query_x.flatten().tolist()) == [12.0, 13.0, 14.0]  # u2 is rows 12..19; time = -row
    assert sorted(task.support_x.flatten().tolist()) == [15.0, 16.0, 17.0, 18.0, 19.0]


def test_grouped_seeded_and_resumable():
    a, b = (GroupedTableSource(ratings(), k_shot=2, n_query=2, seed=4) for _ in range(2))
    assert all(same(tensors(a.sample()), tensors(b.sample())) for _ in range(5))
    state = a.state_dict()
    rest = [a.sample() for _ in range(3)]
    c = GroupedTableSource(ratings(), k_shot=2, n_query=2, seed=0)
    c.load_state_dict(state)
    assert all(same(tensors(x), tensors(c.sample())) for x in rest)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k_shot": 2}, "exactly one of n_query and query_fraction"),
        ({"n_query": 2, "min_group_size": 2}, r"min_group_size = 2 but one task needs 3 rows"),
        ({"n_query": 2, "min_group_size": 50}, "no group has between 50 and any number of rows"),
        ({"n_query": 1, "query_order": "last", "time": False}, "needs the table's time column"),
        ({"query_fraction": 1.5}, r"query_fraction must lie in \(0, 1\)"),
    ],
)
def test_grouped_errors(kwargs, message):
    table = ratings()
    if kwargs.pop("time", True) is False:
        table = GroupedTable(table.groups, table.group_names, table.x, table.y)
    with pytest.raises(TaskSourceError, match=message):
        GroupedTableSource(table, **kwargs)


def test_grouped_table_read_from_csv_and_bad_values_name_the_line(tmp_path):
    path = write(tmp_path / "r.csv", "user,item,rating,ts\n7,1,4,10\n7,2,5,11\n9,1,1,12\n")
    table = GroupedTable.read(
        path, key_column="user", target_column="rating", feature_columns=["item"], time_column="ts"
    )
    assert table.group_names == ("7", "9") and table.y.flatten().tolist() == [4.0, 5.0, 1.0]
    write(path, "user,item,rating\n7,1,4\n7,2,five\n")
    with pytest.raises(TaskSourceError, match=r"r\.csv line 3: 'rating' = 'five' is not a finite number"):
        GroupedTable.read(path, key_column="user", target_column="rating", feature_columns=["item"])


# ---- datasets as tasks ----------------------------------------------------------------------------------


def npz_folder(root):
    rng = np.random.default_rng(0)
    np.savez(root / "blobs.npz", X=rng.normal(size=(20, 3)), y=np.repeat(["no", "yes"], 10))
    np.savez(root / "moons.npz", data=rng.normal(size=(12, 2)), target=np.arange(12) % 3)
    return root


def test_datasets_iterate_in_name_order_and_tasks_split_every_row_once(tmp_path):
    source = dataset_folder(npz_folder(tmp_path), query_fraction=0.25, seed=0)
    assert [(d.name, d.X.shape) for d in source] == [("blobs", (20, 3)), ("moons", (12, 2))] and len(
        source
    ) == 2
    task = source.sample("blobs")
    assert task.classes == ("no", "yes") and (len(task.support_x), len(task.query_x)) == (15, 5)
    X = torch.from_numpy(next(iter(source)).X.astype(np.float32))
    rows = torch.cat([task.support_x, task.query_x])
    assert torch.equal(rows[torch.argsort(rows[:, 0])], X[torch.argsort(X[:, 0])])


def test_datasets_seeded_resumable_and_regression(tmp_path):
    root = npz_folder(tmp_path)
    a, b = dataset_folder(root, seed=1), dataset_folder(root, seed=1)
    assert all(same(tensors(a.sample()), tensors(b.sample())) for _ in range(4))
    state, rest = a.state_dict(), [a.sample() for _ in range(3)]
    b.load_state_dict(state)
    assert all(same(tensors(x), tensors(b.sample())) for x in rest)
    reg = DatasetSource(
        [NamedDataset("m", np.ones((4, 2)), np.array([0.5, 1.5, 2.5, 3.5]))], kind="regression"
    )
    task = reg.sample()
    assert task.support_y.dtype == torch.float32 and task.support_y.shape == (3, 1) and task.classes == ()


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (
            lambda p: np.savez(p / "o.npz", X=np.array([[1, "a"]], dtype=object), y=np.array([0])),
            "cannot read .*o.npz",
        ),
        (
            lambda p: np.savez(p / "w.npz", features=np.ones((3, 2)), labels=np.ones(3)),
            r"has arrays .* expected 'X' and 'y'",
        ),
        (lambda p: write(p / "z.npz", b"not a zip"), r"cannot read .*z\.npz as \.npz"),
        (
            lambda p: np.savez(p / "big.npz", X=np.ones((500, 10)), y=np.ones(500)),
            "above max_file_bytes=1,000",
        ),
        (
            lambda p: np.savez(p / "f.npz", X=np.ones((4, 2)), y=np.array([0.5, 1, 2, 3])),
            "non-integer floats; use kind='regression'",
        ),
        (lambda p: None, r"no \.npz datasets in"),
    ],
)
def test_dataset_errors(tmp_path, make, message):
    make(tmp_path)
    with pytest.raises(TaskSourceError, match=message):
        dataset_folder(tmp_path, max_file_bytes=1000 if message.startswith("above") else 10**8)


# ---- the registry -------------------------------------------------------------------------------------


def test_registry_names_builds_and_rejects_unknown_names_and_keywords():
    assert {"episodes", "variable_episodes", "sinusoid", "task_files", "grouped_table", "datasets"} <= set(
        list_task_sources()
    )
    assert create_task_source("episodes", dataset=pool(), n_way=3, k_shot=1, n_query=1).sample().n_way == 3
    with pytest.raises(
        TaskSourceError,
        match=r"unknown task source 'users'; choose one of \['alphabet_episodes', 'cactus', 'datasets'",
    ):
        create_task_source("users")
    with pytest.raises(TaskSourceError, match=r"create_task_source\('sinusoid'\): .*'ways'"):
        create_task_source("sinusoid", k_shot=1, n_query=1, ways=5)
