"""Learning-rate schedules."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="common")
class WarmupCosineDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup to `learning_rate`, then cosine decay to `alpha` of it.

    `lr(step) = learning_rate * step / warmup_steps` for `step < warmup_steps`,
    then `learning_rate * (alpha + (1 - alpha) * 0.5 * (1 + cos(pi * p)))`
    with `p = min(1, (step - warmup_steps) / decay_steps)`. VGG16 trained from
    scratch stalls without the warmup (see DESIGN.md's measured findings).

    Args:
        learning_rate: float. Peak learning rate.
        warmup_steps: int. Steps of linear warmup (0 for none).
        decay_steps: int. Steps of cosine decay after the warmup.
        alpha: float. Final learning rate as a fraction of the peak.

    Example:

    >>> schedule = WarmupCosineDecay(1e-4, warmup_steps=50, decay_steps=1000)
    >>> round(float(schedule(25)), 10)
    5e-05

    Reference:
        Loshchilov and Hutter, "SGDR: Stochastic Gradient Descent with Warm
        Restarts", ICLR 2017; Goyal et al., "Accurate, Large Minibatch SGD",
        2017 (warmup).
    """

    def __init__(self, learning_rate, warmup_steps, decay_steps, alpha=0.0):
        if not learning_rate > 0:
            raise ValueError(
                f"`learning_rate` must be > 0; received {learning_rate!r}."
            )
        if int(warmup_steps) < 0 or int(decay_steps) < 1:
            raise ValueError(
                "`warmup_steps` must be >= 0 and `decay_steps` >= 1; received "
                f"{warmup_steps!r} and {decay_steps!r}."
            )
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"`alpha` must be in [0, 1]; received {alpha!r}.")
        self.learning_rate = float(learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.decay_steps = int(decay_steps)
        self.alpha = float(alpha)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = float(max(self.warmup_steps, 1))
        warm = self.learning_rate * step / warmup
        progress = ops.clip((step - self.warmup_steps) / self.decay_steps, 0.0, 1.0)
        cosine = 0.5 * (1.0 + ops.cos(math.pi * progress))
        decayed = self.learning_rate * (self.alpha + (1.0 - self.alpha) * cosine)
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "warmup_steps": self.warmup_steps,
            "decay_steps": self.decay_steps,
            "alpha": self.alpha,
        }


def warmup_cosine(learning_rate, warmup_steps, total_steps, alpha=0.05):
    """The `WarmupCosineDecay` of a fit of `total_steps` steps: the warmup is
    cut to leave at least one step of decay (so a short run still decays).

    >>> schedule = warmup_cosine(1e-3, warmup_steps=50, total_steps=20)
    >>> schedule.warmup_steps, schedule.decay_steps
    (19, 1)
    """
    total = max(1, int(total_steps))
    warmup = min(int(warmup_steps), total - 1)
    return WarmupCosineDecay(learning_rate, warmup, max(1, total - warmup), alpha)
