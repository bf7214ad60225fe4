"""ARSC-style sentiment with held-out domains: held-out domains never reach meta-training, target supports are
5 per label from the task's own training file, queries its test file verbatim, and the scores are right."""

from __future__ import annotations

from pathlib import Path

import pytest

from metadl.apps.text.sentiment import (
    RunDomainsError,
    TargetTask,
    arsc_domains,
    check_run_domains,
    evaluate,
    held_out_domains,
    meta_training_source,
    score_task,
    small_tasks,
    target_tasks,
    validation_domains,
)

DOMAINS = ("books", "dvd", "kitchen", "toys", "tools")


def write_arsc(root: Path) -> Path:
    """Five domains x tasks t2/t5, each review tagged with its domain, task, split and row."""
    for d in DOMAINS:
        for t in ("t2", "t5"):
            for split, n in (("train", 14), ("dev", 4), ("test", 6)):
                lines = [f"{d} {t} {split} review {i} .\t{1 if i % 3 else -1}" for i in range(n)]
                (root / f"{d}.{t}.{split}").write_text("\n".join(lines) + "\n")
    (root / "SHA256SUMS").write_text("not a task\n")
    return root


def test_held_out_domains_never_appear_in_meta_training(tmp_path):
    root = write_arsc(tmp_path)
    assert arsc_domains(root) == tuple(sorted(DOMAINS))
    held = held_out_domains(arsc_domains(root), 2, seed=3)
    assert held == held_out_domains(arsc_domains(root), 2, seed=3) and len(set(held)) == 2
    (root / "solo.t2.train").write_text("solo t2 train review 0 .\t1\nsolo t2 train review 1 .\t-1\n")
    assert small_tasks(root, 4) == ["solo.t2"]  # one review of each label: too few for 2 + 2
    source = meta_training_source(root, held, k_shot=2, n_query=2, seed=0)
    assert {n.split(".")[0] for n in source.names} == set(DOMAINS) - set(held)
    for _ in range(50):
        task = source.sample()
        texts = task.support_texts() + task.query_texts()
        assert all(text.split()[0] not in held and text.split()[2] == "train" for text in texts)
    assert not any(text.split()[0] in held for text in source.texts)


def test_target_tasks_use_five_train_reviews_per_label_and_the_test_file_verbatim(tmp_path):
    root = write_arsc(tmp_path)
    tasks = target_tasks(root, ["dvd", "toys"], shots=5, seed=0)
    assert [t.name for t in tasks] == ["dvd.t2", "dvd.t5", "toys.t2", "toys.t5"]
    for task in tasks:
        domain, t = task.name.split(".")
        assert sorted(task.support_labels) == ["-1"] * 5 + ["1"] * 5
        train_lines = (root / f"{task.name}.train").read_text().splitlines()
        assert all(
            f"{text}\t{y}" in train_lines
            for text, y in zip(task.support_texts, task.support_labels, strict=True)
        )
        test_lines = (root / f"{task.name}.test").read_text().splitlines()
        assert [f"{x}\t{y}" for x, y in zip(task.query_texts, task.query_labels, strict=True)] == test_lines
        assert task.majority == "1"  # 2 of every 3 training reviews
    again = target_tasks(root, ["dvd", "toys"], shots=5, seed=0)
    assert [t.support_texts for t in again] == [t.support_texts for t in tasks]
    other = target_tasks(root, ["dvd", "toys"], shots=5, seed=1)
    assert [t.support_texts for t in other] != [t.support_texts for t in tasks]
    with pytest.raises(ValueError, match="has 5 reviews < 6"):  # rows 0, 3, 6, 9, 12 are labelled -1
        target_tasks(root, ["dvd"], shots=6)


def test_validation_domains_are_a_seeded_draw_apart_from_the_held_out_ones(tmp_path):
    root = write_arsc(tmp_path)
    domains = arsc_domains(root)
    for seed in range(20):
        held = held_out_domains(domains, 2, seed=seed)
        val = validation_domains(domains, held, 2, seed=seed)
        assert len(set(val)) == 2 and not set(val) & set(held)
        assert val == validation_domains(domains, held, 2, seed=seed)
        source = meta_training_source(root, held + val, k_shot=2, n_query=2, seed=seed)
        assert {n.split(".")[0] for n in source.names} == set(domains) - set(held) - set(val)
        assert not any(text.split()[0] in held + val for text in source.texts)
    draws = {validation_domains(domains, ("books",), 2, seed=s) for s in range(20)}
    assert len(draws) > 1  # the seed matters
    assert validation_domains(domains, ("books",), 0) == ()
    with pytest.raises(ValueError, match="carve 0..3 of the 4 domains"):
        validation_domains(domains, ("books",), 4)


def test_validation_tasks_take_their_queries_from_the_dev_file(tmp_path):
    root = write_arsc(tmp_path)
    (task,) = [t for t in target_tasks(root, ["kitchen"], shots=3, query="dev") if t.name == "kitchen.t2"]
    assert all(text.split()[2] == "train" for text in task.support_texts)
    dev = (root / "kitchen.t2.dev").read_text().splitlines()
    assert [f"{x}\t{y}" for x, y in zip(task.query_texts, task.query_labels, strict=True)] == dev


def test_a_run_whose_domains_differ_from_the_draw_is_refused():
    meta = {"held_out_domains": ["books", "dvd"], "validation_domains": ["toys"]}
    check_run_domains(meta, ("dvd", "books"))  # the order does not matter
    check_run_domains(meta, ("books", "dvd"), ("toys",))
    with pytest.raises(RunDomainsError, match=r"run7 held out \['books', 'dvd'\] but the benchmark draws"):
        check_run_domains(meta, ("books", "kitchen"), run="run7")
    with pytest.raises(RunDomainsError, match="carved out for validation \\['toys'\\]"):
        check_run_domains(meta, ("books", "dvd"), ("kitchen",))
    with pytest.raises(RunDomainsError, match="carved out for validation \\[\\]"):
        check_run_domains({**meta, "validation_domains": []}, ("books", "dvd"), ("toys",))
    with pytest.raises(RunDomainsError, match="records no held_out_domains"):
        check_run_domains({}, ("books",))
    assert issubclass(RunDomainsError, ValueError)


def test_scores_by_hand():
    task = TargetTask("x.t2", ["a", "b"], ["1", "-1"], ["p", "q", "r", "s"], ["1", "1", "1", "-1"], "1")
    score = score_task(task, ["1", "-1", "1", "-1"])
    assert score.accuracy == 0.75 and score.majority_accuracy == 0.75
    assert score.macro_f1 == pytest.approx((0.8 + 2 / 3) / 2)  # F1(1) = 2*1*(2/3)/(5/3); F1(-1) = 2*0.5*1/1.5
    assert score.majority_macro_f1 == pytest.approx((2 * 0.75 / 1.75 + 0.0) / 2)


def test_evaluate_runs_a_classifier_on_every_task(tmp_path):
    root = write_arsc(tmp_path)
    tasks = target_tasks(root, ["books"], shots=3)

    def by_row(support: list[str], labels: list[str], queries: list[str]) -> list[str]:
        return ["-1" if int(q.split()[4]) % 3 == 0 else "1" for q in queries]  # the rule the files follow

    scores = evaluate(by_row, tasks)
    assert [s.name for s in scores] == ["books.t2", "books.t5"]
    assert all(s.accuracy == 1.0 and s.macro_f1 == 1.0 and s.majority_accuracy < 1.0 for s in scores)


def test_real_arsc_held_out_domains_stay_out(shared_data):
    root = shared_data / "arsc_source"
    held = held_out_domains(arsc_domains(root), 4, seed=0)
    source = meta_training_source(root, held)
    small = small_tasks(root, 10)
    assert len(arsc_domains(root)) == 19 and "tools_hardware.t2" in small
    assert len(source.names) == 3 * 15 - sum(n.split(".")[0] not in held for n in small)
    assert not any(n.split(".")[0] in held for n in source.names)
