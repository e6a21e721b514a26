"""Settings declared once (efficientnet/util/settings.py): config-file checks and the CLIs' flags derived from them."""

import dataclasses
import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from efficientnet.util.settings import check_choices, check_values, from_dict, setting

ROOT = Path(__file__).resolve().parents[1]


@dataclasses.dataclass
class Example:
    name: str = setting(help="Required: no default.")
    rate: float = setting(0.5, "A number.")
    steps: int | None = setting(None, "An integer or null.")
    flip: bool = setting(True, "A boolean.")
    count: int | str = setting("auto", "A count or 'auto'.")
    mode: str = setting("fast", "One of two.", choices=("fast", "slow"))


@pytest.mark.parametrize(
    "values, message",
    [
        ({"rate": "ten"}, "train.rate: expected a number, got 'ten'"),
        ({"rate": True}, "train.rate: expected a number, got True"),  # JSON true is no number
        ({"steps": 3.0}, "train.steps: expected an integer or null, got 3.0"),
        ({"steps": False}, "train.steps: expected an integer or null, got False"),
        ({"flip": "yes"}, "train.flip: expected a boolean (true or false), got 'yes'"),
        ({"flip": None}, "train.flip: expected a boolean (true or false), got None"),
        ({"count": 1.5}, "train.count: expected an integer or a string, got 1.5"),
        ({"rat": 1}, "train.rat: unknown setting; did you mean rate?"),
        ({"xyzzy": 1}, "train.xyzzy: unknown setting; valid: count, flip, mode, name, rate, steps"),
    ],
)
def test_a_bad_key_or_type_is_named_by_its_path(values, message):
    with pytest.raises(ValueError) as error:
        check_values(Example, values, "train")
    assert str(error.value) == message


def test_json_values_of_the_declared_types_are_accepted():
    check_values(Example, {"name": "a", "rate": 1, "steps": None, "flip": False, "count": 3, "mode": "x"})
    check_values(Example, {"rate": 0.25, "steps": 7, "count": "auto"})
    config = from_dict(Example, {"name": "a", "rate": 2})
    assert (config.rate, config.steps, config.mode) == (2, None, "fast")  # an integer stays as written
    with pytest.raises(ValueError, match=r"^rat: unknown setting; did you mean rate\?$"):
        from_dict(Example, {"name": "a", "rat": 2})  # no section: the key alone


def test_choices_are_checked_as_the_flag():
    check_choices(Example(name="a", mode="slow"))
    with pytest.raises(ValueError, match=r"^--mode must be one of \['fast', 'slow'\], got 'medium'$"):
        check_choices(Example(name="a", mode="medium"))


# Names, defaults, help and types each CLI had when its flags were written by hand (before issue 31), except
# where a comment says otherwise.
EXPECTED_FLAGS = {
    "teacher.train": {
        "epochs": [350.0, "Training length in epochs of the labeled data.", "float"],
        "optimizer": ["rmsprop", "rmsprop (reference), sgd (Nesterov momentum 0.9) or adam.", "string"],
        "randaugment_layers": [0, "RandAugment N (0 disables RandAugment).", "int"],
        "small_images": [None, "Stride 1 in the stem and stage 2, for inputs of 64 px or less.", "bool"],
        "train_split": [
            None,
            "Split of --dataset to train on; default: train (digits/tfds), none for file sources.",
            "string",
        ],
        "config": [None, "JSON file of settings; flags given on the command line win.", "string"],
        "unlabel_ratio": None,  # student only
    },
    "student.train": {
        "randaugment_layers": [2, "RandAugment N (0 disables RandAugment).", "int"],
        "randaugment_magnitude": [5.0, "RandAugment M (10 = nominal maximum; above 10 extrapolates).", "float"],
        "unlabel_ratio": [3.0, "Pseudo-labeled images per labeled image in each batch.", "float"],
        "label_type": ["soft", "soft (teacher probabilities) or hard (argmax) pseudo-label targets.", "string"],
        "no_noise": [False, "Ablation: no RandAugment, dropout or stochastic depth.", "bool"],
    },
    "pseudolabel.run": {
        "input": [
            None,
            "Dataset spec of the unlabeled images: images:GLOB, folder:PATH, tfrecord:GLOB, tfds:NAME, digits.",
            "string",
        ],
        "split": [None, "Split for digits and tfds: sources (e.g. unlabeled, train).", "string"],
        "teacher": [None, "Teacher export directory (model.keras + model.json), local or gs://.", "string"],
        "output_dir": [None, "Where the records and stats.json go; replaced when the job succeeds.", "string"],
        "confidence_threshold": [0.3, "Keep images whose top-1 confidence is >= this.", "float"],
        "images_per_class": [
            "auto",
            "K records per predicted class; 'auto' = kept/classes; 0 = no balancing.",
            "string",
        ],
        "num_shards": [
            0,
            "Output files; 0 lets the runner decide (one per bundle, no shuffle of the records); "
            "N > 0: each record in the file its bytes hash to.",
            "int",
        ],
        "batch_size": [64, "Images per teacher call.", "int"],
        # Was an enum flag, whose bad value absl refused with a traceback; now the choice check's one line.
        "label_type": ["soft", "soft (teacher probabilities) or hard (one-hot) pseudo-label targets.", "string"],
    },
}
DUMP_FLAGS = """
import importlib, json, sys
from absl import flags
importlib.import_module(sys.argv[1])
names = json.loads(sys.argv[2])
print(json.dumps({n: [flags.FLAGS[n].default, flags.FLAGS[n].help, flags.FLAGS[n].flag_type()] if n in flags.FLAGS
                  else None for n in names}))
"""


@pytest.mark.slow  # each CLI module imported in a process of its own: they define flags of the same names
def test_cli_flags_derived_from_the_settings_are_those_written_by_hand_before():
    def flags_of(module):
        command = [sys.executable, "-c", DUMP_FLAGS, module, json.dumps(list(EXPECTED_FLAGS[module]))]
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=True)
        return json.loads(completed.stdout.strip().splitlines()[-1])

    with ThreadPoolExecutor(max_workers=len(EXPECTED_FLAGS)) as pool:
        found = dict(zip(EXPECTED_FLAGS, pool.map(flags_of, EXPECTED_FLAGS), strict=True))
    assert found == EXPECTED_FLAGS
