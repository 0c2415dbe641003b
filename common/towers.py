"""Tower choices of the configs: `hub:<handle or folder>` names a pretrained
SavedModel tower (`common.encoders.hub_encoders`). Free of TensorFlow, so
the configs and command lines can check them before TensorFlow loads."""

HUB_PREFIX = "hub:"
PIXEL_SCALES = {
    # name: (scale, shift) applied to pixels in 0-255
    "unit": (1.0 / 255.0, 0.0),  # [0, 1], TF-Hub's image convention
    "symmetric": (2.0 / 255.0, -1.0),  # [-1, 1]
    "raw": (1.0, 0.0),  # 0-255 as given
}


def _named(choice, prefix, usage):
    """What follows `prefix` in a tower choice, or `None` for another choice;
    an empty name is refused with `usage`."""
    if not (isinstance(choice, str) and choice.startswith(prefix)):
        return None
    name = choice[len(prefix) :].strip()
    if not name:
        raise ValueError(f"{choice!r} names nothing: use {usage}.")
    return name


def hub_handle(choice):
    """The handle of a `hub:<handle>` tower choice, or `None` for another."""
    return _named(
        choice,
        HUB_PREFIX,
        "hub:<TF-Hub/Kaggle handle> or hub:<local SavedModel folder>",
    )


KERAS_HUB_PREFIX = "keras_hub:"


def keras_hub_preset(choice):
    """The preset of a `keras_hub:<preset name or folder>` tower choice, or
    `None` for another."""
    return _named(
        choice,
        KERAS_HUB_PREFIX,
        "keras_hub:<preset name, e.g. clip_vit_base_patch16> or "
        "keras_hub:<local preset folder>",
    )


def pretrained_choice(choice):
    """Whether a tower choice names a pretrained tower (`hub:` or
    `keras_hub:`)."""
    return hub_handle(choice) is not None or keras_hub_preset(choice) is not None
