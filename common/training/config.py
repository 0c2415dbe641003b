"""Dataclass configs: presets, `--set section.key=value` overrides, JSON."""

import dataclasses
import inspect
import json
import os

from common.data.files import write_json_atomically


def parse_value(text):
    """A CLI value as JSON when it parses (numbers, bools, null, lists), else str."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def apply_overrides(config, overrides):
    """Applies `["section.key=value", ...]` to a nested dataclass config.

    Raises:
        ValueError: naming the override when the key does not exist or the
            value has the wrong type.
    """
    for override in overrides or []:
        key, sep, raw = override.partition("=")
        if not sep:
            raise ValueError(f"Override {override!r} must look like section.key=value.")
        target = config
        parts = key.strip().split(".")
        for part in parts[:-1]:
            if not dataclasses.is_dataclass(target) or not hasattr(target, part):
                raise ValueError(f"Override {override!r}: no config section {part!r}.")
            target = getattr(target, part)
        field = parts[-1]
        fields = (
            {f.name: f for f in dataclasses.fields(target)}
            if dataclasses.is_dataclass(target)
            else {}
        )
        if field not in fields:
            known = ", ".join(sorted(fields))
            raise ValueError(
                f"Override {override!r}: unknown key {field!r} (known: {known})."
            )
        value = parse_value(raw)
        current = getattr(target, field)
        if isinstance(current, bool) and not isinstance(value, bool):
            raise ValueError(f"Override {override!r}: expected true or false.")
        if (
            isinstance(current, float)
            and isinstance(value, int)
            and not isinstance(value, bool)
        ):
            value = float(value)
        if isinstance(current, tuple) and isinstance(value, list):
            value = tuple(value)
        setattr(target, field, value)
    return config


def config_to_dict(config):
    return dataclasses.asdict(config)


def config_from_dict(cls, data):
    """Rebuilds a nested dataclass from `config_to_dict` output."""
    kwargs = {}
    for field in dataclasses.fields(cls):
        if field.name not in data:
            continue
        value = data[field.name]
        field_type = field.type if isinstance(field.type, type) else None
        if field_type is not None and dataclasses.is_dataclass(field_type):
            value = config_from_dict(field_type, value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[field.name] = value
    return cls(**kwargs)


def save_config(config, path):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    write_json_atomically(path, config_to_dict(config), sort_keys=True)


def load_config(cls, path):
    if not os.path.isfile(path):
        raise FileNotFoundError(f"No config at {path!r}: is this a run directory?")
    with open(path, encoding="utf-8") as f:
        return config_from_dict(cls, json.load(f))


def config_from_presets(presets, preset, overrides=None):
    """A validated config: `presets[preset]()` with the `section.key=value`
    overrides applied (`model.weights=none` meaning no weights)."""
    if preset not in presets:
        raise ValueError(f"Unknown preset {preset!r}; choose from {sorted(presets)}.")
    config = apply_overrides(presets[preset](), overrides)
    if config.model.weights in ("none", "None", ""):
        config.model.weights = None
    return config.validate()


def arguments_for(function, *sections, **given):
    """The keyword arguments of `function` that the config `sections` hold
    under the same names (an earlier section wins), then `given`. A section
    is a dataclass or any object with attributes (an `argparse.Namespace`).

    One place maps a config to a constructor or a function, so a setting
    reaches it by its name and cannot be forgotten on the way:

    >>> import dataclasses
    >>> @dataclasses.dataclass
    ... class Model:
    ...     units: int = 8
    ...     seed: int = 0
    >>> def build(units, activation="relu", **kwargs):
    ...     return units, activation
    >>> arguments_for(build, Model(), activation="gelu")
    {'units': 8, 'activation': 'gelu'}
    """
    parameters = inspect.signature(function).parameters
    named = {
        name
        for name, p in parameters.items()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    arguments = {}
    for section in reversed(sections):
        names = (
            [f.name for f in dataclasses.fields(section)]
            if dataclasses.is_dataclass(section)
            else list(vars(section))  # e.g. parsed command-line arguments
        )
        for name in names:
            if name in named:
                arguments[name] = getattr(section, name)
    arguments.update(given)
    return arguments


def check_positive_integers(named_values):
    """`ValueError` naming the first `(name, value)` that is not an integer
    >= 1 (booleans are not integers here)."""
    for name, value in named_values:
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer; received {value!r}.")


def check_precision(precision):
    from common.training.cli import PRECISIONS

    if precision not in PRECISIONS:
        raise ValueError(
            f"training.precision must be one of {PRECISIONS}; received {precision!r}."
        )


@dataclasses.dataclass
class TrainingConfig:
    """The training settings both applications have (each app's
    `TrainingConfig` adds its own).

    Attributes:
        epochs: training epochs.
        batch_size: global batch size (split over the replicas).
        learning_rate: peak AdamW learning rate (VGG16 from scratch needs
            ~1e-4).
        warmup_steps: linear warmup steps before the cosine decay (VGG16
            from scratch stalls without them).
        weight_decay: AdamW weight decay.
        precision: `float32`, `mixed_bfloat16` (CPU) or `mixed_float16` (GPU).
        seed: global seed.
        deterministic: TensorFlow op determinism (identical runs, slower).
    """

    epochs: int = 30
    batch_size: int = 16
    learning_rate: float = 1e-4
    warmup_steps: int = 200
    weight_decay: float = 1e-4
    precision: str = "float32"
    seed: int = 0
    deterministic: bool = False

    def validate(self):
        """`ValueError` naming the first setting out of range."""
        check_precision(self.precision)
        check_positive_integers(
            (("training.epochs", self.epochs), ("training.batch_size", self.batch_size))
        )
        rate = self.learning_rate
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not rate > 0:
            raise ValueError(
                f"training.learning_rate must be a number > 0; received {rate!r}."
            )
        warmup = self.warmup_steps
        if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
            raise ValueError(
                f"training.warmup_steps must be an integer >= 0; received {warmup!r}."
            )


@dataclasses.dataclass
class DataConfig:
    """The data settings both applications have (each app's `DataConfig`
    adds its own).

    Attributes:
        path: the dataset (a folder or manifest in a layout the app reads, or
            a folder its `prepare` wrote); `None` in a `demo` preset
            generates the data.
        seed: seed of the split by item, when the data has none.
        val_fraction: validation items when the data has no split.
        test_fraction: test items when the data has no split.
        cache: `"auto"` (decoded data cached in memory when it fits
            `cache_budget`, else streamed from the files or shards),
            `"memory"`, `"none"`, or a file prefix for a disk cache.
        cache_budget: fraction of the available memory the cache may take.
    """

    path: str | None = None
    seed: int = 0
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    cache: str = "auto"
    cache_budget: float = 0.25

    def validate(self):
        """`ValueError` naming the first setting out of range."""
        from common.data.cache import check_cache_setting

        val, test = self.val_fraction, self.test_fraction
        if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
            raise ValueError(
                "data.val_fraction and data.test_fraction must be in [0, 1) and sum "
                f"to < 1; received {val} and {test}."
            )
        check_cache_setting(self.cache, self.cache_budget)
