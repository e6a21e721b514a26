"""The validation set held out of the labeled data (pipelines/holdout.py)."""

import numpy as np
import pytest
import tensorflow as tf

from efficientnet.data.datasets import open_source
from pipelines.holdout import hold_out, stratified_holdout


def test_stratified_holdout_takes_a_fraction_of_every_class():
    labels = np.repeat(np.arange(4), [20, 10, 2, 1])
    mask = stratified_holdout(labels, 0.1, seed=3)
    held = np.bincount(labels[mask], minlength=4)
    # 10% of 20 and 10; at least one of a class of two; never the only image of a class.
    assert held.tolist() == [2, 1, 1, 0]
    np.testing.assert_array_equal(mask, stratified_holdout(labels, 0.1, seed=3))
    assert not np.array_equal(mask, stratified_holdout(labels, 0.1, seed=4))
    unreadable = np.array([-1, -1, 0, 0])
    assert not stratified_holdout(unreadable, 0.5, seed=0)[:2].any()
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\)"):
        stratified_holdout(labels, 1.0, seed=0)


def write_class_folder(root, counts):
    for name, count in counts.items():
        (root / name).mkdir(parents=True)
        for index in range(count):
            image = np.full((6, 6, 3), 10 * index, np.uint8)
            (root / name / f"{index}.png").write_bytes(tf.io.encode_png(image).numpy())


def test_hold_out_copies_disjoint_parts_with_class_names(tmp_path):
    write_class_folder(tmp_path / "labeled", {"cat": 10, "dog": 20})
    (tmp_path / "labeled" / "dog" / "broken.png").write_bytes(b"not a png")
    spec = f"folder:{tmp_path}/labeled"
    summary = hold_out(spec, None, str(tmp_path / "split"), fraction=0.1, seed=0)
    assert (summary["num_train"], summary["num_validation"], summary["num_unreadable"]) == (27, 3, 1)
    assert summary["validation_per_class"] == [1, 2] and summary["class_names"] == ["cat", "dog"]
    train, validation = open_source(summary["train"]), open_source(summary["validation"])
    assert train.class_names == validation.class_names == ("cat", "dog")
    assert (train.num_examples(), validation.num_examples()) == (27, 3)
    train_images = {e["image"].tobytes() + bytes([e["label"]]) for e in train.examples().as_numpy_iterator()}
    validation_images = [e["image"].tobytes() + bytes([e["label"]]) for e in validation.examples().as_numpy_iterator()]
    assert len(train_images) == 27 and len(validation_images) == 3
    assert not train_images & set(validation_images)
    ids = (tmp_path / "split" / "validation_ids.txt").read_text().split()
    assert len(ids) == 3 and all(i.startswith(f"{tmp_path}/labeled/") for i in ids)
    # A rerun reuses the split; other settings are refused.
    assert hold_out(spec, None, str(tmp_path / "split"), fraction=0.1, seed=0) == summary
    with pytest.raises(ValueError, match="holds a split of other data or settings"):
        hold_out(spec, None, str(tmp_path / "split"), fraction=0.2, seed=0)


def test_hold_out_refuses_unlabeled_or_tiny_data(tmp_path):
    write_class_folder(tmp_path / "flat_parent", {"flat": 3})
    with pytest.raises(ValueError, match="has no labels"):
        hold_out(f"folder:{tmp_path}/flat_parent/flat", None, str(tmp_path / "a"), fraction=0.1, seed=0)
    write_class_folder(tmp_path / "tiny", {"a": 1, "b": 1})
    with pytest.raises(ValueError, match="too few images per class.*--validation"):
        hold_out(f"folder:{tmp_path}/tiny", None, str(tmp_path / "b"), fraction=0.1, seed=0)
