"""Argument checks shared by the layers: clear `ValueError`s naming the value."""


def check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"`{name}` must be a positive integer; received {value!r}.")
    return value


def check_optional_positive_int(name, value):
    return None if value is None else check_positive_int(name, value)


def check_rate(name, value):
    if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
        raise ValueError(f"`{name}` must be a float in [0, 1); received {value!r}.")
    return float(value)


def check_choice(name, value, choices):
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {sorted(choices)}; received {value!r}."
        )
    return value


def check_rank(name, shape, ranks):
    if shape is not None and len(shape) not in ranks:
        expected = " or ".join(str(r) for r in sorted(ranks))
        raise ValueError(
            f"`{name}` must have rank {expected}; received shape {tuple(shape)}."
        )


def check_same_batch(names_and_shapes):
    """Raises if the known (static) batch sizes of several inputs differ."""
    known = [(n, s[0]) for n, s in names_and_shapes if s is not None and s[0]]
    if len({b for _, b in known}) > 1:
        listed = ", ".join(f"{n}: {b}" for n, b in known)
        raise ValueError(f"Inputs must share one batch size; received {listed}.")


def check_shape_list(layer_name, inputs_shape, compare_last_axis):
    """Validates a list of >= 2 input shapes that must agree axis by axis.

    All shapes must have the same rank and agree on every known axis, the last
    one included only when `compare_last_axis`. Returns the shapes as tuples.
    """
    if not isinstance(inputs_shape, (list, tuple)) or len(inputs_shape) < 2:
        raise ValueError(
            f"{layer_name} takes a list of two or more tensors; received "
            f"{inputs_shape!r}."
        )
    shapes = [tuple(shape) for shape in inputs_shape]
    first = shapes[0]
    end = None if compare_last_axis else -1
    for index, shape in enumerate(shapes):
        if len(shape) != len(first) or any(
            a is not None and b is not None and a != b
            for a, b in zip(shape[:end], first[:end], strict=True)
        ):
            what = "the same shape" if compare_last_axis else "all axes but the last"
            raise ValueError(
                f"{layer_name} inputs must share {what}; input {index} has shape "
                f"{shape}, input 0 has shape {first}."
            )
    return shapes
