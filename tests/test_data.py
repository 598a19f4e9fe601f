import csv

import numpy as np
import pytest
from helpers import BAD_ENCODED, BAD_RAW, CHURNER, GOOD, HEADER, write_lines

from churn_pipeline import data, profiling, synthetic
from churn_pipeline.errors import DataValidationError


def test_synthetic_data_resembles_the_public_dataset():
    columns = synthetic.generate_synthetic(20000, seed=1)
    churn = columns[data.LABEL] == "True."
    assert 0.11 < churn.mean() < 0.17
    intl = columns["Int'l Plan"] == "yes"
    many_calls = columns["CustServ Calls"] >= 4
    heavy_day = columns["Day Mins"] > 264
    assert churn[intl].mean() > 2 * churn[~intl].mean()
    assert churn[many_calls].mean() > 2 * churn[~many_calls].mean()
    assert churn[heavy_day].mean() > 3 * churn[~heavy_day].mean()
    assert abs(columns["Day Mins"].mean() - 179.8) < 2
    assert np.allclose(columns["Day Charge"], (columns["Day Mins"] * 0.17).round(2))


def test_synthetic_data_is_seeded(tmp_path):
    a = synthetic.write_synthetic(tmp_path / "a.csv", 300, 3).read_bytes()
    b = synthetic.write_synthetic(tmp_path / "b.csv", 300, 3).read_bytes()
    c = synthetic.write_synthetic(tmp_path / "c.csv", 300, 4).read_bytes()
    assert a == b != c


def test_synthetic_file_validates_as_raw(synthetic_csv):
    summary = profiling.validate_file(str(synthetic_csv))
    assert summary.format == "raw" and summary.rows == 1500
    assert summary.categories["Int'l Plan"] == ["no", "yes"]


def test_columns_are_found_by_name_not_position(tmp_path):
    rows = list(csv.reader([HEADER, GOOD, CHURNER]))
    order = list(reversed(range(len(rows[0]))))
    path = tmp_path / "shuffled.csv"
    with open(path, "w", newline="") as out:
        csv.writer(out).writerows([[r[i] for i in order] for r in rows])
    summary = profiling.validate_file(str(path))
    assert summary.rows == 2 and summary.positives == 1


@pytest.mark.parametrize("lines, where, problem", BAD_RAW)
def test_bad_raw_input_names_file_line_and_column(tmp_path, lines, where, problem):
    path = write_lines(tmp_path / "bad.csv", lines)
    with pytest.raises(DataValidationError) as caught:
        profiling.validate_file(path)
    message = str(caught.value)
    assert message.startswith(path)
    assert where in message and problem in message


def test_empty_file_is_refused(tmp_path):
    path = write_lines(tmp_path / "empty.csv", [])
    with pytest.raises(DataValidationError, match="empty"):
        profiling.validate_file(path)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(DataValidationError, match="cannot open"):
        profiling.validate_file(str(tmp_path / "nope.csv"))


def test_encoded_input_including_rows_quoted_whole(tmp_path):
    path = write_lines(tmp_path / "enc.csv", ["1,0.5,3", '"0,0.25,4"', "0,1,2"])
    summary = profiling.validate_file(path)
    assert (summary.format, summary.rows, summary.positives) == ("encoded", 3, 1)
    assert summary.columns == ["label", "f1", "f2"]


@pytest.mark.parametrize("lines, where, problem", BAD_ENCODED)
def test_bad_encoded_input(tmp_path, lines, where, problem):
    path = write_lines(tmp_path / "enc.csv", lines)
    with pytest.raises(DataValidationError) as caught:
        profiling.validate_file(path)
    assert where in str(caught.value) and problem in str(caught.value)


def test_public_dataset_validates(churn_txt):
    summary = profiling.validate_file(str(churn_txt))
    assert (summary.format, summary.rows, summary.positives) == ("raw", 3333, 483)


def test_the_profile_checks_the_first_rows_and_estimates_the_rest(tmp_path):
    path = synthetic.write_synthetic(tmp_path / "big.csv", 3000, 2)
    lines = path.read_text().splitlines()
    whole = profiling.profile_file(str(path))
    assert whole.complete and whole.rows == 3000 and whole.summary == profiling.validate_file(str(path))
    lines[2500] = lines[2500].replace(".", ",", 1)  # a bad row past the first 1,000
    bad = write_lines(tmp_path / "bad.csv", lines)
    profile = profiling.profile_file(bad, rows=1000)
    assert not profile.complete and profile.summary.rows == 1000 and len(profile.sample) == 1001
    assert abs(profile.rows - 3000) < 60 and f"about {profile.rows:,} rows" in profile.describe()
    with pytest.raises(DataValidationError, match="line 2501"):
        profiling.profile_file(bad, rows=2600)


def test_synthetic_files_are_written_block_by_block(tmp_path, monkeypatch):
    """generate-data streams: each block of customers is drawn and written on its own (memory is one
    block's whatever the row count), from a generator seeded by (seed, block), so the bytes depend only
    on the row count and the seed; a file of up to one block is the single draw it always was."""
    one_block = synthetic.write_synthetic(tmp_path / "one.csv", 1000, 5).read_bytes()
    drawn = []
    real = synthetic.generate_synthetic
    monkeypatch.setattr(
        synthetic, "generate_synthetic", lambda rows, rng, shifts=(): drawn.append(rows) or real(rows, rng, shifts)
    )
    monkeypatch.setattr(synthetic, "SYNTHETIC_BLOCK_ROWS", 1000)
    written = synthetic.generate_file(tmp_path / "many.csv", 2500, 5)
    assert drawn == [1000, 1000, 500]
    many = written.path.read_bytes()
    assert many.splitlines()[:1001] == one_block.splitlines()  # block 0 is the one-block file
    assert synthetic.generate_file(tmp_path / "again.csv", 2500, 5).path.read_bytes() == many
    summary = profiling.validate_file(str(written.path))
    assert (summary.rows, summary.format) == (2500, "raw")
    assert written.churned == summary.positives and abs(written.churn_rate - summary.churn_rate) < 1e-12
    blocks = many.splitlines()[1:]
    assert blocks[:1000] != blocks[1000:2000]  # each block draws from its own generator
