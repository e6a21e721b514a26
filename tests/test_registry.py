import pytest

from efficientnet.util.registry import Registry, UnknownNameError


def test_register_and_get():
    ops = Registry("augment op")

    @ops.register("Invert")
    def invert(x):
        return 255 - x

    ops.add("Identity", lambda x: x)
    assert ops.get("Invert") is invert
    assert ops.get("Invert")(5) == 250
    assert ops.names() == ["Identity", "Invert"]
    assert "Invert" in ops and "Rotate" not in ops
    assert len(ops) == 2


def test_duplicate_registration_fails():
    models = Registry("model")
    models.add("a", 1)
    with pytest.raises(ValueError, match="model 'a' is already registered"):
        models.add("a", 2)
    assert models.get("a") == 1


def test_unknown_name_lists_valid_names():
    sources = Registry("dataset source")
    sources.add("tfds", 1)
    sources.add("digits", 2)
    with pytest.raises(UnknownNameError, match=r"unknown dataset source 'digit'; valid names: digits, tfds"):
        sources.get("digit")
