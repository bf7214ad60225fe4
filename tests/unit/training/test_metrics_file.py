"""A damaged ``metrics.csv`` is one clear error naming the file, never a UnicodeDecodeError (issue 12, item 11)."""

from __future__ import annotations

import pytest

from metadl.training.metrics import CorruptRunError, MetricsLog, read_metrics


@pytest.fixture
def logged(tmp_path):
    log = MetricsLog(tmp_path, ["iteration", "loss"], tensorboard=False)
    log.append({"iteration": 1, "loss": 0.5})
    log.close()
    return tmp_path / "metrics.csv"


def test_non_utf8_bytes_are_reported_naming_the_file(logged):
    logged.write_bytes(logged.read_bytes() + b"2,\xff\xfe\n")
    with pytest.raises(CorruptRunError, match=r"metrics\.csv: byte 23 is not UTF-8 text"):
        read_metrics(logged)
    with pytest.raises(CorruptRunError, match=r"metrics\.csv: byte 23 is not UTF-8 text"):
        MetricsLog(logged.parent, ["iteration", "loss"], keep_rows=1, tensorboard=False)


@pytest.mark.parametrize("row", [b"two,0.1\n", b"2\n", b"2,0.1,9\n"])
def test_a_row_that_is_not_numbers_is_reported_with_its_line(logged, row):
    logged.write_bytes(logged.read_bytes() + row)
    with pytest.raises(CorruptRunError, match=r"metrics\.csv, line 3: .* is not a row of 2 numbers"):
        read_metrics(logged)
