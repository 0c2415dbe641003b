"""MirroredStrategy over 2 logical CPU devices trains like one device with
the same global batch: the same loss, epoch after epoch (both apps).

Runs in a subprocess: logical devices must be set before TensorFlow starts.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

from common.testing import TestCase
from tests.retrieval.helpers import TINY_OVERRIDES

SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from common.training import get_strategy

def retrieval_losses(strategy_name):
    from retrieval.config import get_config
    from retrieval.model import build_model
    config = get_config("demo", {overrides!r} + [
        "model.dropout_rate=0.0", "training.matching_loss_weight=0.0"])
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 255, (16, 32, 32, 3), dtype=np.uint8)
    words = ["red", "blue", "circle", "square", "top", "left", "big", "small"]
    texts = np.array([" ".join(rng.choice(words, 4)) for _ in range(16)])
    strategy = get_strategy(strategy_name)
    with strategy.scope():
        model = build_model(config)
    model.adapt(list(texts))
    with strategy.scope():
        model.compile(optimizer=keras.optimizers.SGD(0.5))
    data = tf.data.Dataset.from_tensor_slices(
        {{"images": images, "text": texts}}).batch(8).repeat()
    fit = model.fit(data, epochs=3, steps_per_epoch=2, verbose=0, shuffle=False)
    return fit.history["loss"]

def video_losses(strategy_name):
    from video_understanding.config import get_config
    from video_understanding.model import build_model
    config = get_config("demo", ["data.num_frames=2", "model.hidden_dim=16",
        "model.key_dim=8", "model.num_mel_bins=16", "model.audio_filters=[8]",
        "model.dropout_rate=0.0", "model.modality_dropout=0.0",
        "training.precision=float32"])
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(1)
    d = config.data
    size = d.frame_size
    frames = rng.integers(0, 255, (16, 2, size, size, 3), dtype=np.uint8)
    audio = rng.normal(0, 0.1, (16, 4000)).astype("float32")
    labels = rng.integers(0, 4, 16)
    with get_strategy(strategy_name).scope():
        model = build_model(config, 4, False)
        model.compile(optimizer=keras.optimizers.SGD(0.05),
                      loss="sparse_categorical_crossentropy")
    data = tf.data.Dataset.from_tensor_slices(
        ({{"frames": frames, "audio": audio}}, labels)).batch(8).repeat()
    fit = model.fit(data, epochs=3, steps_per_epoch=2, verbose=0, shuffle=False)
    return fit.history["loss"]

# One app per process: two MirroredStrategy objects in one process can clash
# over collective instance keys.
fn = {{"retrieval": retrieval_losses, "video": video_losses}}[sys.argv[1]]
out = {{name: fn(name) for name in ("default", "mirrored")}}
out["replicas"] = get_strategy("mirrored").num_replicas_in_sync
print("RESULT " + json.dumps(out))
"""


class MirroredMatchesOneDeviceTest(TestCase):
    def test_loss_trajectories(self):
        overrides = [o for o in TINY_OVERRIDES if not o.startswith("training.")]
        overrides.append("training.precision=float32")
        script = textwrap.dedent(SCRIPT.format(overrides=overrides))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        for app in ("retrieval", "video"):
            result = subprocess.run([sys.executable, "-c", script, app],
                                    capture_output=True, text=True, env=env,
                                    timeout=600)  # fmt: skip
            self.assertEqual(result.returncode, 0, result.stderr[-4000:])
            lines = [x for x in result.stdout.splitlines() if x.startswith("RESULT ")]
            out = json.loads(lines[-1][len("RESULT ") :])
            self.assertEqual(out["replicas"], 2)
            one, two = out["default"], out["mirrored"]
            self.assertEqual(len(one), 3)
            # the loss moved (training happened) and both runs moved alike
            self.assertNotAlmostEqual(one[0], one[-1], places=4)
            np.testing.assert_allclose(two, one, rtol=2e-3, err_msg=app)
