"""The Beam pseudo-labeling job: pure filtering/balancing semantics by hand, then
the real pipeline on the local runner with a real (tiny) teacher."""

import collections
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from efficientnet.data import records
from efficientnet.data.datasets import open_source
from efficientnet.data.digits import load_digits
from efficientnet.data.input_pipeline import train_dataset
from efficientnet.model.inference import Predictor
from pseudolabel import balance, commit, launch, outputs, stats, targets
from pseudolabel.pipeline import LabelingConfig, run_labeling
from pseudolabel.run import split_argv
from pseudolabel.write import WriteShards, shard_of

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES = 10
CORRUPT = b"\xff\xd8\xff\xe0 this is not a JPEG"

# ----------------------------------------------------------------- filtering and balancing, by hand


def test_threshold_boundary_is_kept():
    assert balance.passes_threshold(0.3, 0.3)
    assert not balance.passes_threshold(0.2999, 0.3)
    assert balance.passes_threshold(np.float32(0.3), 0.3)  # float32 0.3 is 0.30000001
    assert balance.passes_threshold(1.0, 1.0)
    assert balance.passes_threshold(0.0, 0.0)


def test_select_top_orders_by_confidence_then_id():
    candidates = [("b", 0.9), ("a", 0.9), ("c", 0.5), ("d", 0.95), ("e", 0.9)]
    assert balance.select_top(candidates, 3) == [("d", 0.95), ("a", 0.9), ("b", 0.9)]
    assert balance.select_top(iter(candidates), 10) == [("d", 0.95), ("a", 0.9), ("b", 0.9), ("e", 0.9), ("c", 0.5)]
    assert balance.select_top(candidates, 0) == []


def test_duplication_fills_exactly_k_round_robin():
    assert balance.duplication_counts(3, 7) == [3, 2, 2]  # a b c a b c a
    assert balance.duplication_counts(7, 7) == [1] * 7
    assert balance.duplication_counts(1, 4) == [4]
    assert balance.duplication_counts(4, 6) == [2, 2, 1, 1]
    assert balance.duplication_counts(0, 5) == []  # an empty class stays empty
    with pytest.raises(ValueError):
        balance.duplication_counts(8, 7)


def test_balance_class_top_k_then_duplicates():
    candidates = [("x", 0.4), ("y", 0.8), ("z", 0.8), ("w", 0.35)]
    assert balance.balance_class(candidates, 2) == [(("y", 0.8), 1), (("z", 0.8), 1)]
    assert [(c[0], n) for c, n in balance.balance_class(candidates, 6)] == [("y", 2), ("z", 2), ("x", 1), ("w", 1)]
    assert balance.balance_class(candidates[:1], 3) == [(("x", 0.4), 3)]
    # What follows the confidence travels along and does not take part in the ranking.
    located = [("x", 0.4, "file-b", 7), ("y", 0.4, "file-a", 0)]
    assert balance.balance_class(located, 1) == [(("x", 0.4, "file-b", 7), 1)]


def test_auto_images_per_class_is_mean_kept_rounded_half_up_at_least_one():
    assert balance.auto_images_per_class(95, 10) == 10  # 9.5 rounds up
    assert balance.auto_images_per_class(94, 10) == 9
    assert balance.auto_images_per_class(130_000_000, 1000) == 130_000
    assert balance.auto_images_per_class(3, 10) == 1
    assert balance.auto_images_per_class(0, 10) == 1


def test_parse_images_per_class():
    assert balance.parse_images_per_class("auto") == "auto"
    assert balance.parse_images_per_class("AUTO") == "auto"
    assert balance.parse_images_per_class("0") == 0
    assert balance.parse_images_per_class("130000") == 130_000
    assert balance.parse_images_per_class(5) == 5
    for bad in ("-1", "many", "1.5"):
        with pytest.raises(ValueError, match="images_per_class"):
            balance.parse_images_per_class(bad)


PREDICTIONS = [  # (id, predicted class, top-1 confidence)
    ("a", 0, 0.9),
    ("b", 0, 0.8),
    ("c", 0, 0.3),  # exactly at the threshold: kept
    ("d", 0, 0.2999),  # dropped
    ("e", 1, 0.5),
    ("f", 2, 0.1),  # class 2 has nothing above the threshold: stays empty
    ("g", 1, 0.7),
    ("h", 3, 0.6),
]


def test_filter_and_balance_fixed_k():
    copies, k = balance.filter_and_balance(PREDICTIONS, confidence_threshold=0.3, images_per_class=2, num_classes=4)
    assert k == 2
    # class 0: a, b kept (c cut by top-2); class 1: g, e; class 3: h twice.
    assert copies == {"a": 1, "b": 1, "g": 1, "e": 1, "h": 2}


def test_filter_and_balance_duplicates_under_full_classes():
    copies, k = balance.filter_and_balance(PREDICTIONS, confidence_threshold=0.3, images_per_class=5, num_classes=4)
    assert k == 5
    assert copies == {"a": 2, "b": 2, "c": 1, "g": 3, "e": 2, "h": 5}


def test_filter_and_balance_counts_a_repeated_id_per_listing():
    # Identical tfrecord records share an id; each listing is one candidate and the copies add up.
    twice = [("x", 0, 0.9), ("x", 0, 0.9), ("y", 0, 0.8)]
    assert balance.filter_and_balance(twice, confidence_threshold=0.3, images_per_class=4, num_classes=1) == (
        {"x": 3, "y": 1},
        4,
    )
    assert balance.filter_and_balance(twice, confidence_threshold=0.3, images_per_class=0, num_classes=1) == (
        {"x": 2, "y": 1},
        0,
    )


def test_filter_and_balance_auto_and_disabled():
    # 6 kept over 4 classes: K = round(1.5) = 2, the same as the fixed case.
    assert balance.filter_and_balance(
        PREDICTIONS, confidence_threshold=0.3, images_per_class="auto", num_classes=4
    ) == (
        {"a": 1, "b": 1, "g": 1, "e": 1, "h": 2},
        2,
    )
    copies, k = balance.filter_and_balance(PREDICTIONS, confidence_threshold=0.3, images_per_class=0, num_classes=4)
    assert k == 0
    assert copies == {"a": 1, "b": 1, "c": 1, "e": 1, "g": 1, "h": 1}


def test_soft_and_hard_probabilities():
    logits = np.array([[0.0, math.log(3.0)], [2.0, 2.0]])
    np.testing.assert_allclose(targets.soft_probabilities(logits), [[0.25, 0.75], [0.5, 0.5]], rtol=1e-6)
    root3 = math.sqrt(3.0)  # T=2 halves the logits: softmax([0, ln 3 / 2])
    np.testing.assert_allclose(
        targets.soft_probabilities(logits, 2.0)[0], [1 / (1 + root3), root3 / (1 + root3)], rtol=1e-6
    )
    assert targets.soft_probabilities(np.array([1000.0, 0.0])).tolist() == [1.0, 0.0]  # no overflow
    soft = np.array([0.2, 0.5, 0.3], np.float32)
    assert targets.written_probabilities(soft, "soft").tolist() == soft.tolist()
    assert targets.written_probabilities(soft, "hard").tolist() == [0.0, 1.0, 0.0]
    assert targets.hard_probabilities(np.array([0.4, 0.4, 0.2])).tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="temperature"):
        targets.soft_probabilities(logits, 0.0)
    with pytest.raises(ValueError, match="label_type"):
        targets.written_probabilities(soft, "fuzzy")


def test_record_format_derives_label_and_prob():
    record = records.decode_pseudo_label(records.encode_pseudo_label(b"png", np.array([0.1, 0.7, 0.2], np.float32)))
    assert record["image/encoded"] == b"png"
    assert record["label"] == 1
    assert record["prob"] == pytest.approx(0.7)
    np.testing.assert_allclose(record["probabilities"], [0.1, 0.7, 0.2])
    assert outputs.record_pattern("gs://b/out/") == "gs://b/out/pseudo-*.tfrecord"


def test_stats_bins_and_document():
    assert stats.confidence_bins([0.0, 0.09, 0.1, 0.3, 0.999, 1.0]).tolist() == [0, 0, 1, 3, 9, 9]
    assert stats.confidence_bins(np.float32([0.3, 0.7])).tolist() == [
        3,
        6,
    ]  # float32 0.3 is 0.30000001, 0.7 is 0.69999999
    truth = {"a": 0, "b": 1, "e": 1}
    ids, labels, confidences = zip(*PREDICTIONS, strict=True)
    labels, confidences = np.array(labels), np.array(confidences)
    before = stats.new_prediction_stats(4)
    stats.add_predictions(before, ids[:3], labels[:3], confidences[:3], truth)  # in two batches
    stats.add_predictions(before, ids[3:], labels[3:], confidences[3:], truth)
    kept = balance.passes_threshold(confidences, 0.3)
    assert kept.tolist() == [balance.passes_threshold(c, 0.3) for c in confidences]
    after = stats.new_prediction_stats(4)
    stats.add_predictions(
        after, [i for i, k in zip(ids, kept, strict=True) if k], labels[kept], confidences[kept], truth
    )
    balanced = {"counts": [2, 2, 0, 2], "num_selected": 5}
    document = stats.assemble(
        settings={"input": "x"},
        before=before,
        after_filtering=after,
        balanced=balanced,
        images_per_class=2,
        num_failures=1,
    )
    assert document["counts_per_class"] == {
        "before_filtering": [4, 2, 1, 1],
        "after_filtering": [3, 2, 0, 1],
        "after_balancing": [2, 2, 0, 2],
    }
    assert document["confidence_histogram"]["counts"] == [0, 1, 1, 1, 0, 1, 1, 1, 1, 1]
    assert document["empty_classes"] == [2]
    assert (document["num_images"], document["num_kept"], document["num_records"]) == (8, 6, 6)
    assert document["num_dropped_below_threshold"] == 2
    assert document["num_dropped_by_balancing"] == 1
    assert document["num_duplicated"] == 1
    assert document["num_failures"] == 1
    # a (0→0) right, b (0, truly 1) wrong, e right: 2/3 before and after filtering.
    assert document["pseudo_label_accuracy"]["before_filtering"] == pytest.approx(2 / 3)
    assert document["pseudo_label_accuracy"]["after_filtering"] == pytest.approx(2 / 3)


def test_write_shards_writes_every_shard_and_splits_by_record(tmp_path):
    """A fixed shard count: each record in the shard its bytes hash to, empty shards written too."""
    records_in = [b"a", b"b", b"c", b"c"]  # a duplicated record (balancing's copies) stays in one shard
    pipeline = launch.new_pipeline(None)
    with pipeline:
        _ = pipeline | beam.Create([records_in[:3], records_in[3:]]) | WriteShards(str(tmp_path), 5)  # two chunks
    names = sorted(os.listdir(tmp_path))
    assert names == [outputs.shard_name(shard, 5) for shard in range(5)]
    assert names[1] == "pseudo-00001-of-00005.tfrecord"
    written = {name: list(tf.data.TFRecordDataset(str(tmp_path / name)).as_numpy_iterator()) for name in names}
    assert sorted(record for shard in written.values() for record in shard) == sorted(records_in)
    for record in records_in:
        assert record in written[outputs.shard_name(shard_of(record, 5), 5)]
    assert any(not shard for shard in written.values())  # 3 distinct records, 5 shards: some empty, still written


def test_split_argv_sends_unknown_flags_to_beam():
    flag_values = flags.FlagValues()
    flags.DEFINE_string("input", None, "", flag_values=flag_values)
    flags.DEFINE_float("temperature", 1.0, "", flag_values=flag_values)
    flags.DEFINE_bool("verbose", False, "", flag_values=flag_values)
    argv = [
        "run",
        "--input=digits",
        "--runner=DataflowRunner",
        "--temperature",
        "2",
        "--project",
        "p",
        "--noverbose",
        "--dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1",
        "--",
        "--input=x",
    ]
    ours, beam_args = split_argv(argv, flag_values)
    assert ours == ["run", "--input=digits", "--temperature", "2", "--noverbose"]
    assert beam_args == [
        "--runner=DataflowRunner",
        "--project",
        "p",
        "--dataflow_service_options=worker_accelerator=type:nvidia-l4;count:1",
        "--input=x",
    ]


def test_config_validation_names_the_flag():
    base = dict(input="digits", split="unlabeled", teacher="t", output_dir="o")
    for changes, message in (
        ({"confidence_threshold": 1.5}, "confidence_threshold must be in"),
        ({"confidence_threshold": -0.1}, "confidence_threshold must be in"),
        ({"images_per_class": "-3"}, "images_per_class"),
        ({"label_type": "fuzzy"}, "label_type"),
        ({"temperature": 0.0}, "temperature"),
        ({"num_shards": -1}, "num_shards"),
    ):
        with pytest.raises(ValueError, match=message):
            LabelingConfig(**(base | changes)).validate()


def test_output_dir_that_is_not_ours_is_not_replaced(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ValueError, match="refusing to replace"):
        commit.check_replaceable(str(tmp_path))
    commit.check_replaceable(str(tmp_path / "new"))  # absent: fine


def test_a_commit_killed_between_its_renames_is_undone_by_the_next_run(tmp_path):
    """Killed after renaming the previous output aside, before the new one came: it is put back.
    Killed after both renames: the old copy is deleted. Incomplete ones are never put back."""
    output_dir = tmp_path / "pseudo"
    previous = tmp_path / "pseudo.old-1a2b3c4d"
    previous.mkdir()
    (previous / "stats.json").write_text("{}")
    (previous / "pseudo-00000-of-00001.tfrecord").write_bytes(b"records")
    (tmp_path / "pseudo.old-99999999").mkdir()  # no stats.json: not an output to restore
    said = commit.recover_interrupted_commit(str(output_dir))
    assert said == (f"put the previous output {previous} back at {output_dir}; removed {tmp_path}/pseudo.old-99999999")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["pseudo"]
    assert (output_dir / "pseudo-00000-of-00001.tfrecord").read_bytes() == b"records"
    stale = tmp_path / "pseudo.old-5e6f7a8b"
    stale.mkdir()
    (stale / "stats.json").write_text("{}")
    assert commit.recover_interrupted_commit(str(output_dir)) == f"removed {stale}"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["pseudo"]
    assert commit.recover_interrupted_commit(str(output_dir)) is None


# ----------------------------------------------------------------- the pipeline, with a real teacher


def digit_pngs(count, offset=0):
    """Real 8x8 digits as RGB PNG bytes."""
    images = load_digits()[0][offset : offset + count]
    gray = np.rint(images * (255 / 16)).astype(np.uint8)
    return [tf.io.encode_png(np.repeat(image[..., None], 3, axis=-1)).numpy() for image in gray]


def imagenet_record(encoded):
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[0])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


@pytest.fixture(scope="module")
def tfrecord_corpus(tmp_path_factory):
    """80 digits in two files, the first one twice in the first file (an
    identical record, told apart by its position), plus one corrupt image in
    the second file."""
    directory = tmp_path_factory.mktemp("corpus")
    images = digit_pngs(80)
    files = {}
    for index, chunk in enumerate((images[:1] + images[:40], images[40:] + [CORRUPT])):
        path = str(directory / f"unlabeled-{index}.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for encoded in chunk:
                writer.write(imagenet_record(encoded))
        files[path] = [imagenet_record(encoded) for encoded in chunk]
    return str(directory / "unlabeled-*.tfrecord"), files


def read_output(output_dir):
    serialized = []
    for path in sorted(tf.io.gfile.glob(outputs.record_pattern(output_dir))):
        serialized.extend(tf.data.TFRecordDataset(path).as_numpy_iterator())
    return serialized


def fingerprint(record):
    return (
        hashlib.sha256(record["image/encoded"]).hexdigest(),
        record["label"],
        tuple(np.round(record["probabilities"], 5).tolist()),
    )


@pytest.mark.slow  # and a rerun in 2 worker processes, each importing TensorFlow
def test_tfrecord_corpus_end_to_end(teacher, tfrecord_corpus, tmp_path, monkeypatch, capfd):
    pattern, files = tfrecord_corpus
    k = 8
    config = dict(
        input=f"tfrecord:{pattern}",
        teacher=teacher,
        confidence_threshold=0.2,
        images_per_class=str(k),
        num_shards=2,
        batch_size=16,
    )
    output_dir = str(tmp_path / "pseudo")
    document = run_labeling(LabelingConfig(output_dir=output_dir, **config))

    assert sorted(os.listdir(output_dir)) == [
        "config.json",
        "failures.jsonl",
        "pseudo-00000-of-00002.tfrecord",
        "pseudo-00001-of-00002.tfrecord",
        "stats.json",
    ]
    assert os.listdir(tmp_path) == ["pseudo"]  # no temporary directory left behind

    # The corrupt image is a dead letter, counted and named; the job went on.
    corrupt_id = f"{sorted(files)[1]}#40"  # the same id training gives it: file and position
    failures = [json.loads(line) for line in open(os.path.join(output_dir, "failures.jsonl"))]
    assert [failure["id"] for failure in failures] == [corrupt_id]
    assert document["num_failures"] == 1
    assert document["num_images"] == 81
    assert document["images_per_class"] == k
    assert document == json.load(open(os.path.join(output_dir, "stats.json")))

    # Every record in the documented format.
    written = [records.decode_pseudo_label(serialized) for serialized in read_output(output_dir)]
    for serialized in read_output(output_dir)[:3]:
        assert sorted(tf.train.Example.FromString(serialized).features.feature) == [
            "image/encoded",
            "label",
            "prob",
            "probabilities",
        ]
    for record in written:
        assert record["probabilities"].shape == (NUM_CLASSES,)
        assert record["label"] == int(np.argmax(record["probabilities"]))
        assert record["prob"] == np.max(record["probabilities"])
        assert record["probabilities"].sum() == pytest.approx(1.0, abs=1e-5)
        assert record["prob"] >= 0.2

    # Balanced: every non-empty class holds exactly K records; stats agree.
    per_class = collections.Counter(record["label"] for record in written)
    assert set(per_class.values()) == {k}
    assert [per_class.get(label, 0) for label in range(NUM_CLASSES)] == document["counts_per_class"]["after_balancing"]
    kept_classes = {label for label, count in enumerate(document["counts_per_class"]["after_filtering"]) if count}
    assert set(per_class) == kept_classes
    assert document["num_records"] == len(written) == k * len(kept_classes)
    # This teacher keeps more than K of some classes and fewer of others: both halves of balancing ran.
    assert document["num_dropped_by_balancing"] > 0 and document["num_duplicated"] > 0

    # The pipeline computes exactly the pure semantics, on the teacher's own predictions.
    labeler = Predictor.from_export(teacher)
    predictions, image_of = [], {}
    for path, file_records in files.items():
        for index, record in enumerate(file_records):
            encoded = tf.train.Example.FromString(record).features.feature["image/encoded"].bytes_list.value[0]
            if encoded == CORRUPT:
                continue
            probabilities = targets.soft_probabilities(labeler.logits(labeler.views_of_encoded([encoded])[0]))[0]
            example_id = f"{path}#{index}"
            predictions.append((example_id, int(np.argmax(probabilities)), float(np.max(probabilities))))
            image_of[example_id] = encoded
    copies, _ = balance.filter_and_balance(
        predictions, confidence_threshold=0.2, images_per_class=k, num_classes=NUM_CLASSES
    )
    label_of = {example_id: label for example_id, label, _ in predictions}
    expected = collections.Counter()
    for example_id, count in copies.items():
        expected[(hashlib.sha256(image_of[example_id]).hexdigest(), label_of[example_id])] += count
    assert collections.Counter((fingerprint(r)[0], r["label"]) for r in written) == expected

    # The records feed the student's input pipeline.
    source = open_source(f"tfrecord:{outputs.record_pattern(output_dir)}")
    assert source.pseudolabeled and source.num_classes == NUM_CLASSES
    assert sum(1 for _ in source.examples()) == len(written)
    batch = next(iter(train_dataset(source, None, batch_size=4, resolution=32, random_flip=False)))
    assert batch["image"].shape == (4, 32, 32, 3)
    assert batch["probabilities"].shape == (4, NUM_CLASSES)

    # A rerun in 2 worker processes writes the same records, byte for byte, and
    # the same stats. That is the portable path: SDK workers in separate
    # processes over the Fn API, as on Dataflow's Runner v2, Flink and Spark
    # (they import the project too). Each process that labels prints its own
    # last progress line: the user's running mode won over the local default.
    shares = r"^labeling: (\d+) images in "
    read = document["num_images"] + document["num_failures"]
    assert re.findall(shares, capfd.readouterr().err, flags=re.MULTILINE) == [str(read)]
    monkeypatch.setenv("PYTHONPATH", REPO)
    rerun_dir = str(tmp_path / "rerun")
    rerun = run_labeling(
        LabelingConfig(output_dir=rerun_dir, **config),
        ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
    )
    counts = re.findall(shares, capfd.readouterr().err, flags=re.MULTILINE)
    assert len(counts) == 2 and sum(map(int, counts)) == read
    assert rerun == document
    assert collections.Counter(read_output(rerun_dir)) == collections.Counter(read_output(output_dir))

    # A second local run writes the same files, byte for byte: a student reads them in the same order.
    again_dir = str(tmp_path / "again")
    run_labeling(LabelingConfig(output_dir=again_dir, **config))
    for name in (f for f in sorted(os.listdir(output_dir)) if f.endswith(outputs.RECORD_SUFFIX)):
        assert open(os.path.join(again_dir, name), "rb").read() == open(os.path.join(output_dir, name), "rb").read()


@pytest.mark.slow  # a whole Beam job
def test_folder_corpus_hard_labels_without_balancing(teacher, tmp_path):
    root = tmp_path / "folder"
    for index, encoded in enumerate(digit_pngs(24, offset=100)):
        (root / f"class{index % 2}").mkdir(parents=True, exist_ok=True)
        (root / f"class{index % 2}" / f"{index:03d}.png").write_bytes(encoded)
    (root / "class0" / "broken.png").write_bytes(CORRUPT)
    (root / "class1" / "notes.txt").write_text("not an image, not matched")
    output_dir = str(tmp_path / "pseudo")
    document = run_labeling(
        LabelingConfig(
            input=f"folder:{root}",
            teacher=teacher,
            output_dir=output_dir,
            confidence_threshold=0.0,
            images_per_class=0,
            label_type="hard",
            num_shards=1,
        )
    )
    assert document["num_failures"] == 1
    failures = [json.loads(line) for line in open(os.path.join(output_dir, "failures.jsonl"))]
    assert failures[0]["id"] == str(root / "class0" / "broken.png")
    assert document["num_images"] == document["num_kept"] == document["num_records"] == 24
    assert document["images_per_class"] == 0 and document["num_duplicated"] == 0
    written = [records.decode_pseudo_label(serialized) for serialized in read_output(output_dir)]
    files = {path.read_bytes() for path in root.glob("*/*.png")}
    for record in written:
        assert record["image/encoded"] in files  # the original bytes, not re-encoded
        assert sorted(record["probabilities"].tolist()) == [0.0] * (NUM_CLASSES - 1) + [1.0]
        assert record["prob"] == 1.0
    per_class = collections.Counter(record["label"] for record in written)
    assert [per_class[label] for label in range(NUM_CLASSES)] == document["counts_per_class"]["before_filtering"]


@pytest.mark.slow  # a whole Beam job
def test_digits_unlabeled_reports_pseudo_label_accuracy(teacher, tmp_path, capfd):
    output_dir = str(tmp_path / "pseudo")
    document = run_labeling(LabelingConfig(input="digits", split="unlabeled", teacher=teacher, output_dir=output_dir))
    # The default --num_shards=0: one file per bundle of the runner, numbered
    # once the job is done; the job's scratch directories are gone.
    names = sorted(os.listdir(output_dir))
    shards = [name for name in names if name.endswith(outputs.RECORD_SUFFIX)]
    assert names == sorted(["config.json", "failures.jsonl", "stats.json", *shards])
    assert shards == [outputs.shard_name(shard, len(shards)) for shard in range(len(shards))]
    assert len(read_output(output_dir)) == document["num_records"] > 0
    assert open(os.path.join(output_dir, "failures.jsonl")).read() == ""
    # The local run labels everything in this process, against the corpus size.
    err = capfd.readouterr().err
    assert "labeling: 947/947 images in " in err
    assert "Resource module is not available" not in err  # RunInference's warning without torch, fixed
    assert document["num_images"] == 947 and document["num_failures"] == 0
    accuracy = document["pseudo_label_accuracy"]
    assert 0.0 <= accuracy["before_filtering"] <= 1.0
    assert accuracy["after_filtering"] is None or 0.0 <= accuracy["after_filtering"] <= 1.0
    assert accuracy["num_images_before_filtering"] == 947
    assert accuracy["num_images_after_filtering"] == document["num_kept"]
    assert document["images_per_class"] == balance.auto_images_per_class(document["num_kept"], NUM_CLASSES)
    assert document["teacher"] == teacher
    assert (document["input"], document["split"], document["confidence_threshold"]) == ("digits", "unlabeled", 0.3)
    assert len(document["confidence_histogram"]["counts"]) == 10
    assert sum(document["confidence_histogram"]["counts"]) == 947
    assert json.load(open(os.path.join(output_dir, "config.json")))["input"] == "digits"


def label_mock_cifar10(teacher, output_dir, **settings):
    """The job on 12 images of TFDS's mock cifar10 train split."""
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=12):
        config = LabelingConfig(input="tfds:cifar10", split="train", teacher=teacher, output_dir=output_dir, **settings)
        return run_labeling(config)


@pytest.mark.slow  # a whole Beam job
def test_tfds_images_keep_their_stored_bytes(teacher, tmp_path):
    output_dir = str(tmp_path / "pseudo")
    document = label_mock_cifar10(teacher, output_dir, confidence_threshold=0.0, images_per_class=0, num_shards=1)
    assert (document["num_images"], document["num_records"], document["num_failures"]) == (12, 12, 0)
    for serialized in read_output(output_dir):
        encoded = records.decode_pseudo_label(serialized)["image/encoded"]
        assert encoded.startswith(b"\x89PNG")
        assert tf.io.decode_png(encoded).shape == (32, 32, 3)


@pytest.mark.slow  # a whole Beam job
def test_a_job_that_keeps_nothing_writes_an_empty_output(teacher, tmp_path):
    """No image passes the threshold: no class to balance, no records, still a complete output."""
    output_dir = str(tmp_path / "pseudo")
    document = label_mock_cifar10(teacher, output_dir, confidence_threshold=1.0)
    assert (document["num_images"], document["num_kept"], document["num_records"]) == (12, 0, 0)
    assert document["counts_per_class"]["after_balancing"] == [0] * NUM_CLASSES
    assert document["empty_classes"] == list(range(NUM_CLASSES))
    assert sorted(os.listdir(output_dir)) == ["config.json", "failures.jsonl", outputs.shard_name(0, 1), "stats.json"]
    assert read_output(output_dir) == []


def test_failed_run_leaves_the_previous_output_untouched(teacher, tmp_path):
    output_dir = tmp_path / "pseudo"
    output_dir.mkdir()
    (output_dir / "stats.json").write_text('{"previous": true}\n')
    broken_teacher = tmp_path / "broken_teacher"
    shutil.copytree(teacher, broken_teacher)
    (broken_teacher / "model.keras").write_bytes(b"truncated")
    with pytest.raises(ValueError, match=r"model\.keras"):  # raised in the worker, re-raised by the runner
        run_labeling(
            LabelingConfig(input="digits", split="unlabeled", teacher=str(broken_teacher), output_dir=str(output_dir))
        )
    assert os.listdir(output_dir) == ["stats.json"]
    assert json.load(open(output_dir / "stats.json")) == {"previous": True}
    assert sorted(os.listdir(tmp_path)) == ["broken_teacher", "pseudo"]


@pytest.mark.slow  # a CLI process
def test_bad_input_gives_one_line_errors(teacher, tmp_path):
    with pytest.raises(ValueError, match=r"--confidence_threshold must be in \[0, 1\], got 1.5"):
        run_labeling(
            LabelingConfig(
                input="digits", split="unlabeled", teacher=teacher, output_dir=str(tmp_path), confidence_threshold=1.5
            )
        )
    with pytest.raises(FileNotFoundError, match="no files match"):
        run_labeling(LabelingConfig(input=f"tfrecord:{tmp_path}/none-*", teacher=teacher, output_dir=str(tmp_path)))
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pseudolabel.run",
            "--input=digits",
            "--split=unlabeled",
            f"--teacher={tmp_path / 'missing'}",
            f"--output_dir={tmp_path / 'out'}",
            "--confidence_threshold=0.5",
            "--runner=FnApiRunner",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=os.environ | {"PYTHONPATH": REPO},
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stderr.strip().splitlines()[-1] == (
        f"error: no exported model at '{tmp_path / 'missing'}' (expected model.json and model.keras there)"
    )
    assert not (tmp_path / "out").exists()
