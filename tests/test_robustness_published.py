"""The ImageNet benchmarks on miniature trees in their published layouts.

Each tree holds real JPEG files (ImageNet-P: .mp4 videos written here with PyAV) in folders
named by wnids of the list TFDS ships. The scores the evaluators compute by streaming the
files are checked against the same images decoded and scored directly here (one Predictor
call, the formulas of robustness/metrics.py), and the images are placed so that the error of
every folder is known in advance: an image goes into the folder of the class the model
predicts for it (right) or into another one (wrong).
"""

import io
import json
import os
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import tensorflow as tf
from cli_driver import run_in_one_process
from PIL import Image

from efficientnet.model.inference import Predictor
from robustness import imagenet_classes, inference, metrics, report
from robustness.imagenet_a import IMAGENET_A_CLASSES, imagenet_a_report, restricted_predictions, subset_scores
from robustness.imagenet_c import imagenet_c_files_report, imagenet_c_layout, not_comparable_reasons
from robustness.imagenet_p import imagenet_p_report, read_video
from robustness.imagenet_r import IMAGENET_R_WNIDS, imagenet_r_report

ROOT = Path(__file__).resolve().parents[1]
WNIDS = imagenet_classes.imagenet_wnids()
NUM_IMAGES = 4
CORRUPTIONS = (*metrics.BENCHMARK_CORRUPTIONS, "speckle_noise")  # the 15 and one extra


@pytest.fixture(scope="module")
def predictor(imagenet_export):
    return Predictor.from_export(imagenet_export)


@pytest.fixture(scope="module")
def jpegs() -> list[bytes]:
    """Four distinct 48 px JPEG files (smooth random colour fields)."""
    rng = np.random.default_rng(0)
    files = []
    for _ in range(NUM_IMAGES):
        coarse = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
        buffer = io.BytesIO()
        coarse.resize((48, 48), Image.BILINEAR).save(buffer, "JPEG", quality=90)
        files.append(buffer.getvalue())
    return files


def direct_logits(predictor, encoded: list[bytes], view) -> np.ndarray:
    """The logits of encoded images, each decoded and viewed on its own (no tf.data)."""

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def one_view(data):
        return view(tf.io.decode_image(data, channels=3, expand_animations=False), predictor.resolution)

    return predictor.logits(np.stack([one_view(data).numpy() for data in encoded]))


def right_in(k: int, corruption_index: int, severity: int) -> bool:
    """Whether image k goes into its predicted class's folder, in ImageNet-C folder (c, s)."""
    return k < (corruption_index + severity) % (NUM_IMAGES + 1)


# ----------------------------------------------------------------------------------- ImageNet-C


@pytest.fixture(scope="module")
def imagenet_c_tree(tmp_path_factory, predictor, jpegs):
    """ROOT/<corruption>/<severity>/<wnid>/<name>.JPEG for the 15 corruptions and speckle_noise,
    4 images per severity folder of which 0-4 are in their predicted class's folder."""
    predicted = np.argmax(direct_logits(predictor, jpegs, inference.whole_view), axis=-1)
    root = tmp_path_factory.mktemp("imagenet-c")
    for ci, corruption in enumerate(CORRUPTIONS):
        for severity in metrics.SEVERITIES:
            for k, data in enumerate(jpegs):
                label = predicted[k] if right_in(k, ci, severity) else (predicted[k] + 1) % 1000
                folder = root / corruption / str(severity) / WNIDS[label]
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"ILSVRC2012_val_{k:08d}.JPEG").write_bytes(data)
    (root / "README.txt").write_text("files next to the corruption folders are ignored")
    return root


def expected_errors(corruption: str) -> list[float]:
    ci = CORRUPTIONS.index(corruption)
    return [1 - sum(right_in(k, ci, s) for k in range(NUM_IMAGES)) / NUM_IMAGES for s in metrics.SEVERITIES]


def test_imagenet_c_published_files_against_the_direct_formulas(imagenet_c_tree, imagenet_export, capsys):
    # From the export directory, as the CLI does; the other tests hand over the loaded model.
    result = imagenet_c_files_report({"tiny": imagenet_export}, str(imagenet_c_tree), clean_errors={"tiny": 0.3})
    row = result["models"]["tiny"]
    assert result["corruptions"] == list(CORRUPTIONS)
    assert result["num_examples"] == {f"{c}/{s}": NUM_IMAGES for c in CORRUPTIONS for s in metrics.SEVERITIES}
    for corruption in CORRUPTIONS:
        assert row["errors"][corruption] == pytest.approx(expected_errors(corruption))
    ce = {
        c: metrics.corruption_error(expected_errors(c), metrics.alexnet_error_sum(c))
        for c in metrics.BENCHMARK_CORRUPTIONS
    }
    relative = {
        c: metrics.relative_corruption_error(
            expected_errors(c), 0.3, metrics.alexnet_error_sum(c), metrics.ALEXNET_CLEAN_ERROR
        )
        for c in metrics.BENCHMARK_CORRUPTIONS
    }
    assert row["ce"] == pytest.approx(ce) and "speckle_noise" not in row["ce"]
    assert row["mce"] == pytest.approx(np.mean(list(ce.values())))
    assert row["relative_mce"] == pytest.approx(np.mean(list(relative.values())))
    assert row["complete"]  # 15 × 5 evaluated; but the classes are not all there:
    assert not result["comparable"] and len(result["not_comparable_because"]) == 75
    assert result["missing"]["corruptions"] == [] and result["missing"]["severities"] == {}
    classes_found = len({p.name for p in (imagenet_c_tree / "fog" / "1").iterdir()})
    assert len(result["missing"]["classes"]["fog/1"]) == 1000 - classes_found
    assert result["data_source"] == f"published ImageNet-C files under {imagenet_c_tree}"
    markdown = report.markdown(result)
    assert "**Not comparable with published numbers:**" in markdown
    assert f"- fog/1 misses {1000 - classes_found} of 1000 classes: n01440764, " in markdown
    # One progress line for the whole stream, ending with the total count.
    assert f"imagenet_c on {imagenet_c_tree}: 320/320 images in" in capsys.readouterr().err


def test_imagenet_c_missing_corruption_and_severity_are_reported(imagenet_c_tree, predictor, tmp_path):
    root = tmp_path / "partial"
    shutil.copytree(imagenet_c_tree, root)
    shutil.rmtree(root / "fog")
    shutil.rmtree(root / "snow" / "5")
    corruptions = [*metrics.BENCHMARK_CORRUPTIONS, "spatter"]  # an extra that is not there
    result = imagenet_c_files_report(
        {"tiny": predictor}, str(root), corruptions=corruptions, clean_errors={"tiny": 0.3}, batch_size=32
    )
    row = result["models"]["tiny"]
    assert result["missing"]["corruptions"] == ["fog"]
    assert result["missing"]["severities"] == {"snow": [5]}
    assert result["missing"]["extras"] == ["spatter"] and "speckle_noise" not in row["errors"]
    assert row["errors"]["snow"][:4] == pytest.approx(expected_errors("snow")[:4]) and row["errors"]["snow"][4] is None
    # Neither is averaged in: mCE over the 13 corruptions with all five severities, flagged.
    assert "snow" not in row["ce"] and "fog" not in row["errors"]
    assert len(row["mce_corruptions"]) == 13 and not row["complete"] and not result["comparable"]
    assert row["mce"] == pytest.approx(np.mean([row["ce"][c] for c in row["mce_corruptions"]]))
    reasons = result["not_comparable_because"]
    assert reasons[:2] == ["benchmark corruptions missing: fog", "snow misses severities 5"]
    markdown = report.markdown(result)
    assert "- benchmark corruptions missing: fog" in markdown and "mean over the 13 corruption(s)" in markdown
    assert "| snow | " in markdown and "| n/a |" in markdown


def test_imagenet_c_comparability_rules():
    complete = {"corruptions": [], "severities": {}, "classes": {}, "extras": ["spatter"]}
    assert not_comparable_reasons(complete, metrics.SEVERITIES, None, 0) == []
    assert not_comparable_reasons(complete, [1, 2], None, 0) == [
        "severities evaluated: 1, 2 (the benchmark's mCE needs 1-5)"
    ]
    assert not_comparable_reasons(complete, metrics.SEVERITIES, 10, 2) == [
        "only the first 10 images of each corruption and severity (--max_examples)",
        "2 undecodable image(s) left out",
    ]


def test_imagenet_c_unknown_folders_are_errors_naming_them(tmp_path):
    (tmp_path / "c" / "fog" / "1" / "n00000000").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"unknown wnid folder 'n00000000' in '.*/c/fog/1'"):
        imagenet_c_layout(str(tmp_path / "c"))
    (tmp_path / "d" / "fog" / "6").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"unknown severity folder\(s\) \['6'\] in '.*/d/fog'"):
        imagenet_c_layout(str(tmp_path / "d"))
    (tmp_path / "e" / "fogg").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"unknown ImageNet-C corruption folder\(s\) \['fogg'\].*valid: \["):
        imagenet_c_layout(str(tmp_path / "e"))


# ------------------------------------------------------------------------------ ImageNet-A and -R


def subset_tree(root: Path, wnids, predictor, jpegs) -> Path:
    """ROOT/<wnid>/<name>.jpg: one image in every class folder, and each image once more in the
    folder of its restricted prediction (so some predictions are right)."""
    classes = imagenet_classes.indices_of(wnids)
    predicted, _ = restricted_predictions(direct_logits(predictor, jpegs, inference.eval_view), classes)
    for index, wnid in enumerate(wnids):
        (root / wnid).mkdir(parents=True)
        (root / wnid / f"{index:04d}.jpg").write_bytes(jpegs[index % NUM_IMAGES])
    for k, label in enumerate(predicted):
        (root / WNIDS[label] / f"right_{k}.jpg").write_bytes(jpegs[k])
    return root


def direct_subset_scores(root: Path, predictor, wnids) -> dict:
    """The benchmark's scores of every file under ROOT, in the evaluator's order (sorted)."""
    paths = sorted(root.glob("*/*.jpg"))
    labels = np.array([WNIDS.index(path.parent.name) for path in paths])
    logits = direct_logits(predictor, [path.read_bytes() for path in paths], inference.eval_view)
    classes = imagenet_classes.indices_of(wnids)
    return subset_scores(*restricted_predictions(logits, classes), labels, classes)


@pytest.fixture(scope="module")
def imagenet_a_tree(tmp_path_factory, predictor, jpegs):
    wnids = imagenet_classes.wnids_of(IMAGENET_A_CLASSES)
    return subset_tree(tmp_path_factory.mktemp("imagenet-a"), wnids, predictor, jpegs)


@pytest.fixture(scope="module")
def imagenet_r_tree(tmp_path_factory, predictor, jpegs):
    return subset_tree(tmp_path_factory.mktemp("imagenet-r"), IMAGENET_R_WNIDS, predictor, jpegs)


def test_imagenet_r_classes_are_the_benchmarks():
    assert len(set(IMAGENET_R_WNIDS)) == 200 and set(IMAGENET_R_WNIDS) <= set(WNIDS)
    # hendrycks/imagenet-r eval.py also lists the indices (a comment below imagenet_r_mask);
    # the SHA-256 of that list written "1,2,4,...,988", and its sum:
    indices = imagenet_classes.indices_of(IMAGENET_R_WNIDS)
    digest = __import__("hashlib").sha256(",".join(map(str, indices)).encode()).hexdigest()
    assert digest == "a1d9a9ace3098120f5db861d97049116efe80683f4e48c65a62f9bd30fc3366a"
    assert len(set(indices) & set(IMAGENET_A_CLASSES)) == 86  # two different 200-class subsets


@pytest.mark.parametrize("benchmark", ["imagenet_a", "imagenet_r"])
def test_imagenet_a_and_r_published_files_against_the_direct_formulas(
    benchmark, imagenet_a_tree, imagenet_r_tree, predictor
):
    if benchmark == "imagenet_a":
        root, wnids = imagenet_a_tree, imagenet_classes.wnids_of(IMAGENET_A_CLASSES)
        result = imagenet_a_report({"tiny": predictor}, root=str(root), batch_size=64)
    else:
        root, wnids = imagenet_r_tree, IMAGENET_R_WNIDS
        result = imagenet_r_report({"tiny": predictor}, str(root), batch_size=64)
    row = result["models"]["tiny"]
    expected = direct_subset_scores(root, predictor, wnids)
    assert row["num_examples"] == 204 and row["labels_outside_200_classes"] == 0
    assert 4 / 204 <= row["top1"] <= 8 / 204  # the four placed right, and any lucky others
    for key, value in expected.items():
        assert row[key] == pytest.approx(value), key
    # All 200 classes, every image read: comparable with published numbers.
    assert result["comparable"] and result["missing_classes"] == [] and result["undecodable_images"] == 0
    title = {"imagenet_a": "ImageNet-A", "imagenet_r": "ImageNet-R"}[benchmark]
    markdown = report.markdown(result)
    assert markdown.startswith(f"## {title}") and "Comparable with published numbers: yes." in markdown
    assert f"| tiny | 204 | {100 * row['top1']:.1f} |" in markdown


def test_imagenet_a_missing_class_and_foreign_wnids(imagenet_a_tree, predictor, tmp_path):
    root = tmp_path / "a"
    shutil.copytree(imagenet_a_tree, root)
    gone = imagenet_classes.wnids_of(IMAGENET_A_CLASSES)[0]
    shutil.rmtree(root / gone)
    (root / "extra.txt").write_text("not a class folder, ignored")
    second = imagenet_classes.wnids_of(IMAGENET_A_CLASSES)[1]
    (root / second / "0000_truncated.jpg").write_bytes(b"\xff\xd8\xff not a whole JPEG")
    result = imagenet_a_report({"tiny": predictor}, root=str(root), max_examples=50)
    assert result["missing_classes"] == [gone] and not result["comparable"]
    assert result["models"]["tiny"]["num_examples"] == 49 and result["undecodable_images"] == 1
    assert result["not_comparable_because"] == [
        f"1 of 200 classes missing: {gone}",
        "only the first 50 images (--max_examples)",
        "1 undecodable image(s) left out",
    ]
    # A wnid of ImageNet but not of ImageNet-A (tench), and a name that is no wnid at all.
    (root / WNIDS[0]).mkdir()
    with pytest.raises(ValueError, match=rf"unknown wnid folder '{WNIDS[0]}' in '{root}'.*not of this benchmark"):
        imagenet_a_report({"tiny": predictor}, root=str(root))
    with pytest.raises(ValueError, match=r"unknown wnid folder 'n00000000' .*200 ImageNet-R classes"):
        (tmp_path / "r" / "n00000000").mkdir(parents=True)
        imagenet_r_report({"tiny": predictor}, str(tmp_path / "r"))


# ------------------------------------------------------------------------------------ ImageNet-P


def write_video(path: Path, frames: np.ndarray) -> None:
    """An .mp4 (MPEG-4 part 2, the codec every FFmpeg build has) of RGB frames, 10 fps."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"qscale": "2"}  # near-lossless, so the frames read back stay close
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


@pytest.fixture(scope="module")
def imagenet_p_tree(tmp_path_factory, jpegs):
    """ROOT/<perturbation>/<wnid>/<name>.mp4: two perturbations, two sequences of 5 frames each,
    cycling through the four images (so predictions can flip)."""
    images = np.stack([tf.io.decode_jpeg(data).numpy() for data in jpegs])
    root = tmp_path_factory.mktemp("imagenet-p")
    for perturbation in ("gaussian_noise", "translate"):
        for index, wnid in enumerate(WNIDS[:2]):
            frames = images[[(index + j) % NUM_IMAGES for j in (0, 1, 2, 2, 3)]]
            write_video(root / perturbation / wnid / f"ILSVRC2012_val_{index:08d}.mp4", frames)
    return root, images


def test_mp4_is_written_and_read_back(imagenet_p_tree):
    root, images = imagenet_p_tree
    frames = read_video(str(root / "translate" / WNIDS[1] / "ILSVRC2012_val_00000001.mp4"))
    assert frames.shape == (5, 48, 48, 3) and frames.dtype == np.uint8
    # Lossy (chroma is subsampled), but each frame is nearest to the picture written there.
    distances = np.abs(frames[:, None].astype(np.float64) - images[None]).mean(axis=(2, 3, 4))
    assert distances.argmin(axis=1).tolist() == [1, 2, 3, 3, 0] and distances.min(axis=1).max() < 12


def test_imagenet_p_published_videos_against_the_direct_formulas(imagenet_p_tree, predictor):
    root, _ = imagenet_p_tree
    baseline = {"flip_probability": {"gaussian_noise": 0.5, "translate": 0.25}}
    baseline_file = root.parent / "baseline.json"
    baseline_file.write_text(json.dumps(baseline))
    result = imagenet_p_report({"tiny": predictor}, str(root), baseline=str(baseline_file))
    row = result["models"]["tiny"]
    for perturbation in ("gaussian_noise", "translate"):
        logits = [
            predictor.logits(inference.whole_view(tf.constant(read_video(str(path))), predictor.resolution).numpy())
            for path in sorted((root / perturbation).glob("*/*.mp4"))
        ]
        noise = perturbation == "gaussian_noise"
        predictions = [np.argmax(sequence, axis=-1) for sequence in logits]
        fp = metrics.flip_probability(predictions, compare_with_first=noise)
        assert row["flip_probability"][perturbation] == pytest.approx(fp)
        assert row["top5_distance"][perturbation] == pytest.approx(
            metrics.top5_distance(logits, compare_with_first=noise)
        )
        assert row["flip_rate"][perturbation] == pytest.approx(fp / baseline["flip_probability"][perturbation])
    assert result["num_sequences"] == {"gaussian_noise": 2, "translate": 2}
    assert result["missing"]["perturbations"] == [
        p for p in metrics.BENCHMARK_PERTURBATIONS if p not in ("gaussian_noise", "translate")
    ]
    assert len(result["missing"]["classes"]["translate"]) == 998 and not result["comparable"]
    assert "**Not comparable with published numbers:**" in report.markdown(result)


def test_imagenet_p_video_outside_a_wnid_folder_is_an_error(tmp_path, imagenet_p_tree, predictor):
    root, _ = imagenet_p_tree
    shutil.copytree(root / "translate", tmp_path / "p" / "translate")
    os.rename(tmp_path / "p" / "translate" / WNIDS[0], tmp_path / "p" / "translate" / "class0")
    with pytest.raises(ValueError, match=r"unknown wnid folder 'class0' in '.*/p/translate'"):
        imagenet_p_report({"tiny": predictor}, str(tmp_path / "p"))


# ------------------------------------------------------------------------------------------- CLI


@pytest.mark.slow  # one CLI process for every case (tests/cli_driver.py)
def test_cli_on_published_files(imagenet_r_tree, imagenet_p_tree, imagenet_export, tmp_path):
    (tmp_path / "bad" / "n00000000").mkdir(parents=True)
    common = [f"--export=tiny={imagenet_export}", f"--output_dir={tmp_path / 'out'}"]
    cases = [
        [*common, "--benchmarks=imagenet_r,imagenet_p", f"--imagenet_r_dir={imagenet_r_tree}"]
        + [f"--imagenet_p_dir={imagenet_p_tree[0]}"],
        [*common, "--benchmarks=imagenet_r"],
        [*common, "--benchmarks=imagenet_a", f"--imagenet_a_dir={tmp_path / 'bad'}"],
        [*common, "--benchmarks=imagenet_c", f"--imagenet_c_dir={tmp_path / 'nowhere'}"],
        [*common, "--benchmarks=imagenet_a", f"--imagenet_c_dir={tmp_path}"],
    ]
    env = os.environ | {"PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2"}
    ok, *errors = run_in_one_process("pipelines.robustness", cases, tmp_path / "cli", cwd=ROOT, env=env, timeout=300)
    assert ok.returncode == 0, ok.stderr
    assert "## ImageNet-R" in ok.stdout and "Comparable with published numbers: yes." in ok.stdout
    assert "## ImageNet-P" in ok.stdout
    saved = json.loads((tmp_path / "out" / "imagenet_r.json").read_text())
    assert saved["comparable"] and saved["models"]["tiny"]["num_examples"] == 204
    assert (tmp_path / "out" / "imagenet_p.md").exists()
    expected = [
        "error: --benchmarks=imagenet_r needs --imagenet_r_dir",
        f"error: unknown wnid folder 'n00000000' in '{tmp_path / 'bad'}': not one of the 200 ImageNet-A classes",
        f"error: --imagenet_c_dir '{tmp_path / 'nowhere'}' is not a folder",
        "error: --imagenet_c_dir is given but --benchmarks does not include imagenet_c",
    ]
    for result, start in zip(errors, expected, strict=True):
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(start), result.stderr
