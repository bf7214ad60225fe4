"""The application registry of ``metadl train`` / ``metadl eval``: each application claims its own configs
and run folders, and nothing else; the core's configs and runs are claimed by none."""

from __future__ import annotations

from pathlib import Path

import pytest

from metadl.apps.registry import (
    APPLICATIONS,
    application_configs,
    application_for_config,
    application_for_run,
    list_applications,
)
from metadl.config import list_configs, shipped_config

CLAIMED = {"detect_omniglot_scenes": "detection", "recsys_movielens100k_coldstart": "recsys",
           "text_sentiment_arsc": "text", "text_intent_clinc150_to_banking77": "text"}  # fmt: skip


@pytest.mark.parametrize("name", sorted(set(list_configs()) | set(application_configs())))
def test_each_shipped_config_is_claimed_by_its_application_only(name):
    owners = [app.name for app in APPLICATIONS.values() if app.find_config(name) is not None]
    assert owners == ([CLAIMED[name]] if name in CLAIMED else [])
    found = application_for_config(name)
    assert (found[0].name if found else None) == CLAIMED.get(name)


def test_application_configs_are_the_text_and_recsys_ones():
    assert list_applications() == ["detection", "recsys", "text"]
    assert set(application_configs()) == {n for n, app in CLAIMED.items() if app != "detection"}
    assert all(path.is_file() for path in application_configs().values())


@pytest.mark.parametrize(
    ("config", "owner"),
    [("app: recsys\n", "recsys"), ("app: text\n", "text"), ("task: detection\n", "detection"),
     (shipped_config("maml_sinusoid").read_text(), None)],
)  # fmt: skip
def test_run_folders_and_their_model_folder_are_claimed_by_their_config(tmp_path, config, owner):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "config.yaml").write_text(config)
    for target in (run, run / "model"):
        app = application_for_run(target)
        assert (app.name if app else None) == owner
    assert application_for_run(tmp_path / "missing") is None


def test_a_yaml_file_is_claimed_by_its_app_key(tmp_path):
    for text, owner in [
        ("app: recsys\n", "recsys"),
        ("app: text\n", "text"),
        ("task: detection\n", "detection"),
    ]:
        path = tmp_path / f"{owner}.yaml"
        path.write_text(text)
        found = application_for_config(str(path))
        assert found is not None and found[0].name == owner and found[1] == Path(path)
