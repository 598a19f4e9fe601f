import tarfile

import numpy as np
import pytest
import xgboost as xgb

from churn_pipeline import config, evaluation, training
from churn_pipeline.errors import DataValidationError
from churn_pipeline.etl import job as etl_job


@pytest.fixture(scope="module")
def splits(spark, synthetic_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("etl")
    etl_job.run_etl(spark, str(synthetic_csv), str(out), seed=3)
    return out


def test_hyperparameters_are_sagemaker_strings_with_the_classic_defaults():
    hp = training.hyperparameters_from(config.DEFAULTS)
    assert hp == {
        "max_depth": "5",
        "eta": "0.2",
        "gamma": "4.0",
        "min_child_weight": "6.0",
        "subsample": "0.8",
        "objective": "binary:logistic",
        "eval_metric": "error,auc,logloss",
        "num_round": "100",
    }


def test_training_writes_a_sagemaker_model_archive(splits, tmp_path):
    hp = training.hyperparameters_from(dict(config.DEFAULTS, num_round=20))
    booster, final = training.train(splits / "train", splits / "validation", hp)
    assert booster.num_boosted_rounds() == 20
    assert {"train:error", "validation:error", "validation:auc", "validation:logloss"} <= set(final)
    archive = training.save_model_archive(booster, tmp_path / "job" / "output" / "model.tar.gz")
    with tarfile.open(archive) as tar:
        assert tar.getnames() == [training.MODEL_FILE]
    loaded = training.load_model_archive(archive)
    features, _ = training.read_channel(splits / "test")
    matrix = xgb.DMatrix(features)
    assert np.array_equal(loaded.predict(matrix), booster.predict(matrix))


def test_final_metrics_by_name_derive_accuracy():
    listing = training.final_metric_data_list({"validation:error": 0.25, "train:auc": 0.9}, "t")
    assert [m["MetricName"] for m in listing] == ["train:auc", "validation:error"]
    named = training.metrics_by_name(list(reversed(listing)))
    assert named["validation:accuracy"] == 0.75 and "train:accuracy" not in named


def test_mismatched_channels_are_refused(splits, tmp_path):
    other = tmp_path / "narrow.csv"
    other.write_text("0,1\n1,2\n")
    with pytest.raises(DataValidationError, match="features"):
        training.train(splits / "train", other, training.hyperparameters_from(config.DEFAULTS))


def test_empty_channel_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataValidationError, match="No data in training channel path"):
        training.read_channel(tmp_path / "empty")


@pytest.mark.parametrize(
    "name, content, error",
    [
        ("_SUCCESS", b"", "Could not determine delimiter"),  # Spark's marker
        ("_$folder$", b"", "Could not determine delimiter"),  # EMRFS's folder marker
        (".part-00000.csv.crc", b"crc", "Hidden file found in the data path"),  # Hadoop's local checksum
        ("part-00001.csv", b"", "Could not determine delimiter on line"),  # an empty part
    ],
)
def test_a_channel_file_the_container_cannot_read_fails_the_job(splits, tmp_path, name, content, error):
    """SM-CHANNEL-FILES: The SageMaker XGBoost container reads every file of a channel: the local job refuses the
    same files."""
    import shutil

    channel = tmp_path / "channel"
    shutil.copytree(splits / "train", channel)
    (channel / name).write_bytes(content)
    with pytest.raises(DataValidationError, match=error):
        training.read_channel(channel)


def test_evaluation_metrics_by_hand():
    labels = [1, 1, 0, 0, 0, 1]
    scores = [0.9, 0.4, 0.6, 0.1, 0.2, 0.8]
    result = evaluation.evaluate(labels, scores)
    assert result["confusion_matrix"] == {
        "true_negative": 2,
        "false_positive": 1,
        "false_negative": 1,
        "true_positive": 2,
    }
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["precision"] == pytest.approx(2 / 3) and result["recall"] == pytest.approx(2 / 3)
    # 9 positive/negative pairs, 8 ranked correctly
    assert result["auc"] == pytest.approx(8 / 9)


def test_auc_extremes():
    assert evaluation.evaluate([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])["auc"] == pytest.approx(1.0)
    assert evaluation.evaluate([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5])["auc"] == pytest.approx(0.5)


def test_the_streamed_tally_is_the_one_shot_evaluation_and_its_auc_the_rank_auc():
    rng = np.random.default_rng(3)
    labels = (rng.random(3000) < 0.2).astype(float)
    scores = np.clip(rng.normal(0.3 + 0.3 * labels, 0.2), 0, 1)
    tally = evaluation.ScoreTally()
    for chunk in np.array_split(np.arange(labels.size), 7):
        tally.add(labels[chunk], scores[chunk])
    assert tally.result() == evaluation.evaluate(labels, scores)
    positives, negatives = scores[labels == 1], scores[labels == 0]
    exact = (positives[:, None] > negatives[None, :]).mean() + 0.5 * (positives[:, None] == negatives[None, :]).mean()
    assert tally.result()["auc"] == pytest.approx(exact, abs=1e-3)


def test_the_cost_chosen_cutoff_minimises_the_expected_cost_on_the_scores():
    """Every customer scored above the cutoff gets an offer (its cost each); every churner at or below it is lost
    (the churn loss each): the chosen cutoff has the least expected cost of every cutoff, brute-forced."""
    rng = np.random.default_rng(5)
    labels = (rng.random(4000) < 0.15).astype(float)
    raw = np.clip(rng.beta(2, 5, labels.size) + 0.35 * labels, 0, 0.9999)
    scores = (np.floor(raw * evaluation.BINS) + 0.5) / evaluation.BINS  # one distinct value per bin at most
    tally = evaluation.ScoreTally()
    tally.add(labels, scores)
    chosen = tally.cost_cutoff(offer_cost=20.0, churn_loss=200.0)

    def cost(cutoff):
        offered = scores > cutoff
        return 20.0 * offered.sum() + 200.0 * (labels.astype(bool) & ~offered).sum()

    candidates = np.r_[-1.0, np.unique(scores)]  # every distinct way to split the scores
    assert chosen["expected_cost"] == pytest.approx(min(cost(c) for c in candidates))
    assert cost(chosen["cutoff"]) == pytest.approx(chosen["expected_cost"])
    assert chosen["cost_offering_nobody"] == 200.0 * labels.sum()
    assert chosen["cost_offering_everybody"] == 20.0 * labels.size
    cheap_offers = tally.cost_cutoff(offer_cost=1.0, churn_loss=200.0)
    assert cheap_offers["cutoff"] < chosen["cutoff"]  # cheaper offers: offer to more customers
    gap = evaluation.ScoreTally()
    gap.add([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9])
    # every cutoff from 0.2 to just below 0.8 costs the same two offers: the middle is taken
    assert gap.cost_cutoff(offer_cost=10.0, churn_loss=100.0)["cutoff"] == pytest.approx(0.5, abs=1e-3)
