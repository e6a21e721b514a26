"""The progress line: duration format, ETA arithmetic and time-based rate limiting, on a fake clock."""

import io

import pytest

from efficientnet.util.progress import ProgressLine, format_duration, seconds_left


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
