"""The progress lines: duration format, ETA arithmetic, time-based rate limiting and the training
loop's step lines with their TensorBoard scalars, on a fake clock."""

import io

import pytest
import tensorflow as tf

from efficientnet.util.progress import ProgressLine, StepProgress, format_duration, seconds_left


@pytest.mark.parametrize(
    "seconds, text",
    [(0, "0m00s"), (59.9, "0m59s"), (192, "3m12s"), (3599, "59m59s"), (3600, "1h00m"), (3720, "1h02m")],
)
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_seconds_left():
    assert seconds_left(100, 500, 40.0) == 10.0
    assert seconds_left(600, 500, 40.0) == 0  # a total that was an underestimate
    assert seconds_left(100, None, 40.0) is None  # the source cannot count its images
    assert seconds_left(100, 500, 0.0) is None


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make_progress(total):
    clock, stream = FakeClock(), io.StringIO()
    return ProgressLine("job", total, clock=clock, stream=stream), clock, stream


def test_lines_at_most_every_interval_with_the_rate_since_the_previous_line():
    progress, clock, stream = make_progress(1000)
    clock.now = 4.0
    progress.advance(100)
    assert stream.getvalue() == ""  # under 10 s: no line yet
    clock.now = 10.0
    progress.advance(100)
    clock.now = 15.0
    progress.advance(300)
    clock.now = 20.0
    progress.advance(100, failed=2)
    # 200 images in the first 10 s, then 400 in the next 10 s: 20 and 40 images/s.
    assert stream.getvalue().splitlines() == [
        "job: 200/1,000 images | 20.0 images/s | ETA 0m40s",
        "job: 600/1,000 images | 40.0 images/s | ETA 0m10s | 2 undecodable",
    ]
    clock.now = 25.0
    progress.close()
    progress.close()
    assert stream.getvalue().splitlines()[2:] == ["job: 600/1,000 images in 0m25s | 24.0 images/s | 2 undecodable"]


def test_unknown_total_gives_count_and_rate_without_eta():
    progress, clock, stream = make_progress(None)
    clock.now = 12.0
    progress.advance(3000)
    clock.now = 30.0
    progress.close()
    assert stream.getvalue().splitlines() == [
        "job: 3,000 images | 250.0 images/s",
        "job: 3,000 images in 0m30s | 100.0 images/s",
    ]


def test_other_units():
    clock, stream = FakeClock(), io.StringIO()
    progress = ProgressLine("imagenet_p fog", 8, unit="sequences", clock=clock, stream=stream)
    clock.now = 10.0
    progress.advance(2)
    assert stream.getvalue() == "imagenet_p fog: 2/8 sequences | 0.2 sequences/s | ETA 0m30s\n"


def test_reaching_the_total_leaves_the_last_word_to_the_final_line():
    progress, clock, stream = make_progress(500)
    clock.now = 30.0
    progress.advance(500)  # one chunk of everything, after the interval: no "500/500 | ETA 0m00s" line
    progress.close()
    assert stream.getvalue().splitlines() == ["job: 500/500 images in 0m30s | 16.7 images/s"]


def test_training_lines_give_the_image_rate_since_the_previous_line_and_write_scalars(tmp_path):
    clock, stream = FakeClock(), io.StringIO()
    # 96 images a step: 32 labeled and 64 pseudo-labeled (unlabel_ratio 2); resumed at step 0.
    progress = StepProgress(60, 0, 96, str(tmp_path), clock=clock, stream=stream)
    clock.now = 10.0
    progress.report(10, {"loss": 2.5213, "labeled": 2.4921, "l2": 0.027731}, 0.001)
    clock.now = 12.0
    progress.report(20, {"loss": 2.0, "labeled": 1.98, "l2": 0.02}, 0.002)
    progress.close()
    # 960 images in 10 s, 50 steps (4,800 images) left; then 960 in 2 s, 3,840 left.
    assert stream.getvalue().splitlines() == [
        "step 10/60 | 96.0 img/s | loss 2.521, labeled 2.492, l2 0.02773 | lr 0.00100 | ETA 0m50s",
        "step 20/60 | 480.0 img/s | loss 2, labeled 1.98, l2 0.02 | lr 0.00200 | ETA 0m08s",
    ]
    scalars = {
        (event.step, value.tag): float(tf.make_ndarray(value.tensor))
        for path in tmp_path.glob("events.out.tfevents.*")
        for event in tf.compat.v1.train.summary_iterator(str(path))
        for value in event.summary.value
    }
    assert sorted(scalars) == [
        (step, tag)
        for step in (10, 20)
        for tag in ("images_per_second", "learning_rate", "loss/l2", "loss/labeled", "loss/loss")
    ]
    assert scalars[(10, "loss/labeled")] == pytest.approx(2.4921)
    assert scalars[(20, "images_per_second")] == pytest.approx(480.0)
    assert scalars[(20, "learning_rate")] == pytest.approx(0.002)


def test_a_resumed_run_counts_its_rate_from_the_step_it_resumed_at():
    clock, stream = FakeClock(), io.StringIO()
    progress = StepProgress(60, 40, 32, None, clock=clock, stream=stream)  # no summary_dir: not the chief
    clock.now = 4.0
    progress.report(50, {"loss": 1.0}, 0.1)
    # 10 steps of 32 images in 4 s; 10 steps left.
    assert stream.getvalue() == "step 50/60 | 80.0 img/s | loss 1 | lr 0.10000 | ETA 0m04s\n"
