"""Every dataset source, offline: digits, mock TFDS, TFRecords and folders made here."""

import hashlib
import json

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from efficientnet.data.datasets import open_source
from efficientnet.data.digits import DIGITS_FILE, digits_split_indices, digits_withheld_labels, load_digits
from efficientnet.data.folder_source import glob_regex
from efficientnet.data.source import EVAL, TRAIN, UNKNOWN_LABEL, EmptySourceError, for_python_loop, guarded_group_map
from efficientnet.util.registry import UnknownNameError


def collect(dataset):
    return [{key: value.numpy() for key, value in example.items()} for example in dataset]


def encode(image, file_format="jpeg"):
    image = tf.constant(image, tf.uint8)
    return (tf.io.encode_jpeg(image, quality=95) if file_format == "jpeg" else tf.io.encode_png(image)).numpy()


def smooth_image(seed, height=20, width=30, channels=3):
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, channels)
    ramp = np.linspace(0, 60, width)[None, :, None]
    return np.clip(base + ramp + np.zeros((height, width, channels)), 0, 255).astype(np.uint8)


def imagenet_record(encoded, label):
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
        "image/class/label": tf.train.Feature(int64_list=tf.train.Int64List(value=[label])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def pseudolabel_record(encoded, probabilities):
    feature = {
        "image/encoded": tf.train.Feature(bytes_list=tf.train.BytesList(value=[encoded])),
        "probabilities": tf.train.Feature(float_list=tf.train.FloatList(value=probabilities)),
        "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(np.argmax(probabilities))])),
        "prob": tf.train.Feature(float_list=tf.train.FloatList(value=[max(probabilities)])),
    }
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_records(path, records):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)


# ----------------------------------------------------------------- digits


def test_the_shipped_digits_are_scikit_learns_copy_of_the_uci_test_set():
    # The checksum of sklearn/datasets/data/digits.csv.gz in scikit-learn 1.9.1,
    # as digits.NOTICE.txt states: same images, same order as its load_digits().
    assert hashlib.sha256(DIGITS_FILE.read_bytes()).hexdigest() == (
        "09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22"
    )
    images, labels = load_digits()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and images.max() == 16
    assert np.bincount(labels).tolist() == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    assert labels[:4].tolist() == [0, 1, 2, 3]
    assert images[0, 0].tolist() == [0, 0, 5, 13, 9, 1, 0, 0]


def test_digits_protocol_split_sizes_and_disjointness():
    splits = digits_split_indices()
    oracle = splits.pop("unlabeled_with_labels")  # the unlabeled pool again, for the oracle bound only
    np.testing.assert_array_equal(oracle, splits["unlabeled"])
    assert {name: len(indices) for name, indices in splits.items()} == {
        "train": 150,
        "validation": 200,
        "unlabeled": 947,
        "test": 500,
    }
    union = np.concatenate(list(splits.values()))
    assert len(set(union.tolist())) == 1797
    _, labels = load_digits()
    assert np.bincount(labels[splits["train"]]).tolist() == [15] * 10
    # The split is fixed: these are the first test and unlabeled indices for seed 0.
    assert splits["test"][:4].tolist() == [360, 1773, 1482, 600]
    assert splits["unlabeled"][:4].tolist() == [861, 1620, 1749, 911]


def test_scarce_label_digits_keep_every_other_split():
    standard, scarce = digits_split_indices(), digits_split_indices(labeled_per_class=4)
    assert {name: len(indices) for name, indices in scarce.items()} == {
        "train": 40,
        "validation": 200,
        "unlabeled": 947,
        "unlabeled_with_labels": 947,
        "test": 500,
    }
    _, labels = load_digits()
    assert np.bincount(labels[scarce["train"]]).tolist() == [4] * 10
    assert set(scarce["train"].tolist()) < set(standard["train"].tolist())  # the first 4 of each class's 15
    for name in ("validation", "unlabeled", "test"):
        np.testing.assert_array_equal(scarce[name], standard[name])
    labeled = set(scarce["train"].tolist())
    assert not labeled & set(scarce["validation"].tolist())
    assert not labeled & set(scarce["unlabeled"].tolist())
    assert not labeled & set(scarce["test"].tolist())
    source = open_source("digits:per_class=4")
    assert source.num_examples("train") == 40 and source.spec == "digits:per_class=4"


def test_the_oracle_split_is_the_unlabeled_pool_with_its_true_labels():
    source = open_source("digits")
    unlabeled = collect(source.examples("unlabeled"))
    truth = collect(source.examples("unlabeled_with_labels"))
    assert [example["id"] for example in truth] == [example["id"] for example in unlabeled]
    withheld = digits_withheld_labels()
    assert [int(example["label"]) for example in truth] == [withheld[example["id"].decode()] for example in truth]


@pytest.mark.parametrize(
    "spec, message",
    [
        ("digits:4", r"the digits source takes 'digits\[:per_class=N\]\[,unlabeled_shift=corrupted\]', got 'digits:4'"),
        ("digits:per_class=16", r"digits: per_class must be 1..15, got 16"),
    ],
)
def test_digits_rejects_bad_arguments(spec, message):
    with pytest.raises(ValueError, match=message):
        open_source(spec)


def test_digits_examples_and_withheld_labels():
    source = open_source("digits")
    assert source.num_classes == 10 and source.class_names[3] == "3"
    unlabeled = collect(source.examples("unlabeled"))
    assert len(unlabeled) == 947
    assert {example["label"] for example in unlabeled} == {UNKNOWN_LABEL}
    first = unlabeled[0]
    assert first["id"] == b"digits/861"
    assert first["image"].shape == (8, 8, 3) and first["image"].dtype == np.uint8
    # 4-bit intensities 0..16 scaled to 0..255, grey replicated to RGB.
    images, labels = load_digits()
    expected = np.rint(images[861] * (255 / 16)).astype(np.uint8)
    np.testing.assert_array_equal(first["image"][..., 1], expected)
    withheld = digits_withheld_labels()
    assert len(withheld) == 947 and withheld["digits/861"] == labels[861]
    test = collect(source.examples("test"))
    assert [int(example["label"]) for example in test[:3]] == labels[[360, 1773, 1482]].tolist()


def test_digits_rejects_unknown_split():
    splits = r"\['train', 'validation', 'unlabeled', 'test', 'unlabeled_with_labels'\]"
    with pytest.raises(ValueError, match=r"needs a split, one of " + splits):
        open_source("digits").examples("val")
    # A TFDS slice is refused before anything is read, saying where slices work.
    with pytest.raises(
        ValueError, match=r"reads whole splits, .*got 'train\[:10\]' \(slices such as .* are for tfds: sources\)"
    ):
        open_source("digits").num_examples("train[:10]")


def test_unknown_source_lists_valid_ones():
    with pytest.raises(
        UnknownNameError, match="unknown dataset source 'csv'; valid names: digits, folder, images, tfds, tfrecord"
    ):
        open_source("csv:/data")


# ----------------------------------------------------------------- TFDS


@pytest.mark.parametrize(
    "name, split, num_classes",
    [
        ("imagenet2012", "train", 1000),
        ("cifar10", "test", 10),
        ("svhn_cropped", "extra", 10),
        ("imagenet_a", "test", 1000),
    ],
)
def test_tfds_source_with_mock_data(name, split, num_classes):
    with tfds.testing.mock_data(num_examples=6):
        source = open_source(f"tfds:{name}")
        examples = collect(source.examples(split))
    assert source.num_classes == num_classes and len(source.class_names) == num_classes
    assert len(examples) == 6
    for example in examples:
        assert set(example) == {"id", "image", "label"}
        assert example["image"].dtype == np.uint8 and example["image"].shape[-1] == 3
        assert 0 <= example["label"] < num_classes


def test_tfds_source_needs_a_split_and_has_defaults():
    with tfds.testing.mock_data(num_examples=2):
        with pytest.raises(ValueError, match="needs a split"):
            open_source("tfds:cifar10").examples(None)
        cifar = open_source("tfds:cifar10")
        assert cifar.resolve_split(None, TRAIN) == "train" and cifar.resolve_split(None, EVAL) == "test"


# ----------------------------------------------------------------- TFRecord


def test_imagenet_tfrecords_with_undecodable_records_skipped_and_named(tmp_path, capfd):
    good = [encode(smooth_image(i), "jpeg" if i % 2 else "png") for i in range(4)]
    truncated = good[1][: len(good[1]) // 3]
    write_records(tmp_path / "train-00000", [imagenet_record(good[0], 3), imagenet_record(b"not an image", 1)])
    write_records(tmp_path / "train-00001", [imagenet_record(good[1], 0), imagenet_record(truncated, 2)])
    write_records(tmp_path / "train-00002", [imagenet_record(good[2], 5), imagenet_record(good[3], 7)])
    (tmp_path / "dataset_info.json").write_text(json.dumps({"num_classes": 8}))
    source = open_source(f"tfrecord:{tmp_path}/train-*")
    examples = collect(source.examples())
    assert source.num_classes == 8 and not source.pseudolabeled
    ids = [example["id"].decode() for example in examples]
    assert ids == [f"{tmp_path}/train-00000#0", f"{tmp_path}/train-00001#0", f"{tmp_path}/train-00002#0",
                   f"{tmp_path}/train-00002#1"]  # fmt: skip
    assert [int(example["label"]) for example in examples] == [3, 0, 5, 7]
    np.testing.assert_array_equal(examples[0]["image"], smooth_image(0))  # PNG is lossless
    assert int(source.skipped_images.numpy()) == 2
    log = capfd.readouterr().err
    assert f'skipped undecodable image: "{tmp_path}/train-00000#1"' in log
    assert f'skipped undecodable image: "{tmp_path}/train-00001#1"' in log


@pytest.mark.parametrize("group_size", [1, 3, 8])
def test_a_guarded_group_drops_and_names_only_its_bad_record(tmp_path, capfd, group_size):
    """The training guard maps records by groups; a group holding a bad record is mapped again one
    by one, so only that record goes (named), and the order of the others is kept."""
    images = [encode(smooth_image(i), "jpeg") for i in range(7)]
    images[4] = images[4][: len(images[4]) // 3]  # truncated
    records = tf.data.Dataset.from_tensor_slices({"id": [f"r{i}" for i in range(7)], "encoded": images})

    def decode(record):
        return {"id": record["id"], "image": tf.io.decode_jpeg(record["encoded"], channels=3)[:4, :4]}

    kept = list(guarded_group_map(records, decode, group_size).as_numpy_iterator())
    assert [example["id"].decode() for example in kept] == ["r0", "r1", "r2", "r3", "r5", "r6"]
    np.testing.assert_array_equal(kept[5]["image"], tf.io.decode_jpeg(images[6], channels=3)[:4, :4])
    assert 'skipped undecodable image: "r4"' in capfd.readouterr().err


def test_pseudolabel_tfrecords(tmp_path):
    probabilities = [[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]]
    write_records(
        tmp_path / "pseudo-00000-of-00001",
        [pseudolabel_record(encode(smooth_image(i), "png"), p) for i, p in enumerate(probabilities)],
    )
    source = open_source(f"tfrecord:{tmp_path}/pseudo-*")
    examples = collect(source.examples())
    assert source.pseudolabeled and source.num_classes == 3
    assert [int(example["label"]) for example in examples] == [1, 0]
    np.testing.assert_allclose(examples[0]["probabilities"], probabilities[0])


def test_tfrecord_errors_name_the_pattern_or_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no files match tfrecord pattern '.*missing-\\*'"):
        open_source(f"tfrecord:{tmp_path}/missing-*")
    write_records(tmp_path / "empty", [])
    with pytest.raises(ValueError, match="hold no records"):
        open_source(f"tfrecord:{tmp_path}/empty")
    other = tf.train.Example(
        features=tf.train.Features(feature={"x": tf.train.Feature(int64_list=tf.train.Int64List(value=[1]))})
    )
    write_records(tmp_path / "other", [other.SerializeToString()])
    with pytest.raises(ValueError, match="'.*other' is neither ImageNet format"):
        open_source(f"tfrecord:{tmp_path}/other")
    write_records(tmp_path / "ok", [imagenet_record(encode(smooth_image(0)), 0)])
    with pytest.raises(ValueError, match="has no splits"):
        open_source(f"tfrecord:{tmp_path}/ok").examples("train")


# ----------------------------------------------------------------- folder


def make_folder(root):
    (root / "cat").mkdir(parents=True)
    (root / "dog").mkdir()
    (root / "cat" / "a.jpg").write_bytes(encode(smooth_image(1)))
    (root / "cat" / "b.png").write_bytes(encode(smooth_image(2, channels=1), "png"))  # grayscale
    (root / "cat" / "notes.txt").write_text("not an image, ignored by extension")
    (root / "dog" / "c.png").write_bytes(encode(smooth_image(3, channels=4), "png"))  # RGBA
    (root / "dog" / "d.jpg").write_bytes(b"\xff\xd8\xff\xe0 truncated")  # corrupt JPEG


def test_folder_source_decodes_formats_and_skips_corrupt_files(tmp_path, capfd):
    make_folder(tmp_path / "images")
    source = open_source(f"folder:{tmp_path}/images")
    assert source.class_names == ("cat", "dog") and source.num_examples() == 4
    examples = collect(source.examples())
    assert [example["id"].decode().split("/")[-1] for example in examples] == ["a.jpg", "b.png", "c.png"]
    assert [int(example["label"]) for example in examples] == [0, 0, 1]
    assert all(example["image"].shape == (20, 30, 3) for example in examples)
    gray = examples[1]["image"]
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
    np.testing.assert_array_equal(examples[2]["image"], smooth_image(3, channels=4)[..., :3])
    assert int(source.skipped_images.numpy()) == 1
    assert f'skipped undecodable image: "{tmp_path}/images/dog/d.jpg"' in capfd.readouterr().err


def test_folder_source_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image folder '.*nowhere' does not exist"):
        open_source(f"folder:{tmp_path}/nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptySourceError, match=r"'folder:.*empty' yields no image: looked for .jpg.* files in .*empty"):
        open_source(f"folder:{tmp_path}/empty")
    (tmp_path / "empty" / "cls").mkdir()
    with pytest.raises(EmptySourceError, match="files in the class subfolders of .*; 0 file"):
        open_source(f"folder:{tmp_path}/empty")
    (tmp_path / "empty" / "stray.png").write_bytes(encode(smooth_image(1), "png"))
    with pytest.raises(ValueError, match=r"holds both class subfolders \(cls\) and 1 image.*'images:.*empty/\*'"):
        open_source(f"folder:{tmp_path}/empty")


def write_images(paths: list, seed: int = 0) -> None:
    for index, path in enumerate(paths):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode(smooth_image(seed + index), "png"))


def test_flat_folder_is_an_unlabeled_corpus(tmp_path):
    flat = tmp_path / "dump"
    write_images([flat / "b.png", flat / "a.png"])
    (flat / "notes.txt").write_text("not an image")
    (flat / ".thumbnails").mkdir()  # hidden folders are not classes
    source = open_source(f"folder:{flat}")
    assert not source.labeled and source.num_classes is None and source.class_names is None
    examples = collect(source.examples())
    assert [e["id"].decode() for e in examples] == [f"{flat}/a.png", f"{flat}/b.png"]
    assert [int(e["label"]) for e in examples] == [UNKNOWN_LABEL] * 2
    with pytest.raises(ValueError, match="has no splits"):
        source.examples("train")


def test_images_glob_reads_nested_folders(tmp_path):
    write_images([tmp_path / "top.png", tmp_path / "a" / "one.png", tmp_path / "a" / "b" / "two.jpg"])
    (tmp_path / "a" / "b" / "two.jpg").write_bytes(encode(smooth_image(9), "jpeg"))
    (tmp_path / "a" / "b" / "three.txt").write_text("skip")
    every = open_source(f"images:{tmp_path}/**")
    assert [p.removeprefix(f"{tmp_path}/") for p in every.paths] == ["a/b/two.jpg", "a/one.png", "top.png"]
    assert not every.labeled and every.num_examples() == 3
    assert len(collect(every.examples())) == 3
    assert open_source(f"images:{tmp_path}/**/*.png").num_examples() == 2
    assert open_source(f"images:{tmp_path}/*/*.png").paths == [f"{tmp_path}/a/one.png"]
    with pytest.raises(EmptySourceError, match=r"looked for files matching '.*/\*\*/\*\.gif' that end in"):
        open_source(f"images:{tmp_path}/**/*.gif")


def test_glob_regex_semantics():
    assert glob_regex("d/**/*.jpg").fullmatch("d/x.jpg") and glob_regex("d/**/*.jpg").fullmatch("d/a/b/x.jpg")
    assert not glob_regex("d/*.jpg").fullmatch("d/a/x.jpg")
    assert glob_regex("d/cam[0-9]/?.png").fullmatch("d/cam3/x.png")
    assert not glob_regex("d/cam[!0-9]/x.png").fullmatch("d/cam3/x.png")
    assert glob_regex("gs://b/x+y/*.png").fullmatch("gs://b/x+y/1.png")  # regex characters are literal


def test_empty_read_counts_undecodable_files(tmp_path):
    (tmp_path / "pile").mkdir()
    for name in ("a.jpg", "b.png"):
        (tmp_path / "pile" / name).write_bytes(b"not an image")
    source = open_source(f"folder:{tmp_path}/pile")
    with pytest.raises(EmptySourceError, match=r"yields no image: .*; 2 file\(s\) skipped as undecodable"):
        source.require_images(None)
    write_images([tmp_path / "pile" / "c.png"])  # after the two bad files: found past them
    open_source(f"folder:{tmp_path}/pile").require_images(None)


def test_default_splits_fit_each_source(tmp_path):
    digits = open_source("digits")
    assert (digits.resolve_split(None, TRAIN), digits.resolve_split(None, EVAL)) == ("train", "test")
    assert digits.resolve_split("validation", EVAL) == "validation"
    make_folder(tmp_path / "images")
    folder = open_source(f"folder:{tmp_path}/images")
    assert folder.resolve_split(None, TRAIN) is None and folder.resolve_split(None, EVAL) is None
    with pytest.raises(ValueError, match="has no splits \\(got split 'train'\\)"):
        folder.resolve_split("train", TRAIN)


def test_sources_read_through_tf_gfile_filesystems():
    # ram:// goes through the same tf.io.gfile code path as gs://, without network.
    root = "ram://datasets_test"
    tf.io.gfile.makedirs(f"{root}/folder/zero")
    with tf.io.gfile.GFile(f"{root}/folder/zero/x.png", "wb") as f:
        f.write(encode(smooth_image(5), "png"))
    with tf.io.TFRecordWriter(f"{root}/records-0") as writer:
        writer.write(imagenet_record(encode(smooth_image(6), "png"), 4))
    folder = collect(open_source(f"folder:{root}/folder").examples())
    records = collect(open_source(f"tfrecord:{root}/records-*").examples())
    np.testing.assert_array_equal(folder[0]["image"], smooth_image(5))
    np.testing.assert_array_equal(records[0]["image"], smooth_image(6))
    assert records[0]["label"] == 4


# ----------------------------------------------------------------- shards and stored bytes


def test_shards_partition_every_source_with_the_ids_of_the_whole(tmp_path):
    """Readers that split a corpus (labeling workers) see the ids training sees."""
    for index in range(3):
        write_records(
            tmp_path / f"part-{index}", [imagenet_record(encode(smooth_image(index * 2 + j)), j) for j in (0, 1)]
        )
    make_folder(tmp_path / "images")
    for spec, split in ((f"tfrecord:{tmp_path}/part-*", None), (f"folder:{tmp_path}/images", None), ("digits", "test")):
        source = open_source(spec)
        whole = [example["id"] for example in collect(source.examples(split))]
        parts = [[example["id"] for example in collect(source.examples(split, shard=(index, 2)))] for index in range(2)]
        assert sorted(parts[0] + parts[1]) == sorted(whole), spec
        assert not set(parts[0]) & set(parts[1]), spec
    assert open_source(f"tfrecord:{tmp_path}/part-*").num_shards() == 3  # one per file
    with pytest.raises(ValueError, match="shard 2 of 2 does not exist"):
        open_source("digits").examples("test", shard=(2, 2))


def test_encoded_batches_match_the_guarded_read_also_past_a_failing_record(tmp_path):
    """The fast unguarded read is an optimisation only: a record that fails
    mid-batch switches to the guarded read at the first record not yet yielded."""
    good = [encode(smooth_image(index)) for index in range(7)]
    write_records(tmp_path / "part-0", [imagenet_record(encoded, 1) for encoded in good[:5]])
    write_records(tmp_path / "part-1", [imagenet_record(good[5], 1), b"not an Example", imagenet_record(good[6], 1)])
    write_images([tmp_path / "images" / f"{index}.png" for index in range(3)])
    read = {}
    for spec, split in ((f"tfrecord:{tmp_path}/part-*", None), (f"folder:{tmp_path}/images", None), ("digits", "test")):
        source = open_source(spec)
        expected = [(e["id"], e["encoded"], int(e["label"])) for e in collect(source.examples(split, decode=False))]
        batches = list(source.encoded_batches(split, batch_size=2))
        assert all(len(batch["id"]) <= 2 for batch in batches)
        read[spec] = [row for b in batches for row in zip(b["id"], b["encoded"], map(int, b["label"]), strict=True)]
        assert read[spec] == expected, spec
    # the record that is not an Example failed the fast read; the guarded one keeps it, empty, under its id
    failed = [row for row in read[f"tfrecord:{tmp_path}/part-*"] if not row[1]]
    assert failed == [(f"{tmp_path}/part-1#1".encode(), b"", UNKNOWN_LABEL)]


def test_a_python_loop_gets_the_datasets_elements_as_numpy():
    """Turning the autotuner off changes when the iterator's threads stop, not what it yields."""
    images = tf.data.Dataset.range(10).map(lambda i: ({"image": tf.fill([2], i)}, tf.strings.as_string(i)))
    batches = images.batch(4).prefetch(1)
    read = list(for_python_loop(batches))
    assert [len(ids) for _, ids in read] == [4, 4, 2]
    for (got, got_ids), (want, want_ids) in zip(read, batches.as_numpy_iterator(), strict=True):
        np.testing.assert_array_equal(got["image"], want["image"])
        assert list(got_ids) == list(want_ids) and isinstance(got_ids[0], bytes)


def test_stored_bytes_are_passed_on_and_unreadable_records_kept_empty(tmp_path):
    good = encode(smooth_image(0))
    write_records(
        tmp_path / "part-0", [imagenet_record(good, 1), imagenet_record(b"not an image", 2), b"not an Example"]
    )
    examples = collect(open_source(f"tfrecord:{tmp_path}/part-*").examples(decode=False))
    assert [(e["id"].decode(), e["encoded"], int(e["label"])) for e in examples] == [
        (f"{tmp_path}/part-0#0", good, 1),
        (f"{tmp_path}/part-0#1", b"not an image", 2),  # bytes are not decoded here
        (f"{tmp_path}/part-0#2", b"", UNKNOWN_LABEL),  # unparseable: kept, empty, so its consumer names it
    ]
    digits = collect(open_source("digits").examples("test", decode=False).take(1))[0]
    np.testing.assert_array_equal(
        tf.io.decode_png(digits["encoded"]).numpy(), collect(open_source("digits").examples("test").take(1))[0]["image"]
    )
