"""The two models' preset tables: `make submit PRESET=x` passes one name to both trainers."""
from classifier.presets import PRESETS as CLASSIFIER
from segmenter import encoders
from segmenter.presets import PRESETS as SEGMENTER


def test_both_models_have_every_preset():
    assert set(SEGMENTER) == set(CLASSIFIER)


def test_pretrained_presets_name_encoders_with_imagenet_weights():
    """A preset that asks for ImageNet weights names an encoder that has them (else it would train from
    random after a warning on every machine), in both models."""
    for name, preset in SEGMENTER.items():
        if preset["encoder_weights"] == "imagenet":
            assert encoders.get(preset["network"]["encoder"]).pretrained is not None, name
        backbone = CLASSIFIER[name].get("backbone", "densenet121")
        if backbone in encoders.ENCODERS and CLASSIFIER[name]["encoder_weights"] == "imagenet":
            assert encoders.get(backbone).pretrained is not None, name
    assert SEGMENTER["cpu"]["network"]["encoder"] == "efficientnet_lite0"
    assert SEGMENTER["cpu-random"]["encoder_weights"] == "none"
