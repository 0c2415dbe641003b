"""Compute efficiency: VGG16's achieved GFLOP/s as a fraction of matmul's.

First the machine's dense matmul GFLOP/s (float32 and bfloat16, a 2048^3
product in a `tf.function`), then the VGG16 backbone (no top, 224x224) forward
pass and training step (forward + backward + SGD update). FLOPs are counted
from the layers (2 per multiply-add; a training step is 3x the forward pass:
one forward, two for the backward pass). Targets: forward >= 0.8, training
step >= 0.6 of the matmul figure of the same precision.

    python bench/compute.py [--quick] [--precision P] [--xla]
"""

import os
import sys

import keras
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench._common import bench_parser, median_time, result, write_report  # noqa: E402


def matmul_gflops(dtype, n=2048, repeats=5):
    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    b = tf.cast(tf.random.normal((n, n)), dtype)

    @tf.function(jit_compile=False)
    def product():
        return tf.reduce_sum(tf.cast(tf.matmul(a, b)[:1, :1], tf.float32))

    seconds = median_time(lambda: product().numpy(), repeats, warmup=2)
    return 2 * n**3 / seconds / 1e9


def vgg16_forward_flops(size):
    """Multiply-adds x 2 of VGG16's 13 conv layers at `size` x `size`."""
    flops, side, channels = 0, size, 3
    for block, (width, convs) in enumerate(
        [(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)]
    ):
        for _ in range(convs):
            flops += 2 * side * side * 9 * channels * width
            channels = width
        side //= 2
        del block
    return flops


def main(argv=None):
    parser = bench_parser(__doc__, "compute")
    parser.add_argument("--precision", default="float32")
    parser.add_argument("--xla", action="store_true", help="jit_compile the steps")
    parser.add_argument("--batch", type=int, default=None)
    args = parser.parse_args(argv)
    gpu = bool(tf.config.list_physical_devices("GPU"))
    batch = args.batch or (32 if gpu else (2 if args.quick else 4))
    repeats = 3 if args.quick else 5
    size = 224

    results = []
    peak = {}
    dtypes = [("float32", tf.float32), ("bfloat16", tf.bfloat16)]
    if gpu:
        dtypes.append(("float16", tf.float16))
    for name, dtype in dtypes:
        peak[name] = matmul_gflops(dtype, 4096 if gpu else 2048, repeats)
        results.append(result(f"matmul_gflops_{name}", peak[name], "GFLOP/s"))
    compute_dtype = {"float32": "float32", "mixed_bfloat16": "bfloat16",
                     "mixed_float16": "float16"}[args.precision]  # fmt: skip
    reference = peak[compute_dtype]

    keras.config.set_dtype_policy(args.precision)
    model = keras.applications.VGG16(
        include_top=False, weights=None, input_shape=(size, size, 3)
    )
    images = tf.random.uniform((batch, size, size, 3), 0, 255)
    optimizer = keras.optimizers.SGD(1e-6)
    optimizer.build(model.trainable_variables)

    @tf.function(jit_compile=args.xla)
    def forward(x):
        return tf.reduce_sum(tf.cast(model(x, training=False), tf.float32))

    @tf.function(jit_compile=args.xla)
    def train_step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.cast(model(x, training=True), tf.float32) ** 2)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    flops = vgg16_forward_flops(size) * batch
    t_forward = median_time(lambda: forward(images).numpy(), repeats, warmup=2)
    t_train = median_time(lambda: train_step(images).numpy(), repeats, warmup=2)
    forward_gflops = flops / t_forward / 1e9
    train_gflops = 3 * flops / t_train / 1e9
    tag = args.precision + ("_xla" if args.xla else "")
    results += [
        result(f"vgg16_forward_gflops_{tag}", forward_gflops, "GFLOP/s"),
        result(f"vgg16_train_step_gflops_{tag}", train_gflops, "GFLOP/s"),
        result(f"vgg16_forward_images_per_s_{tag}", batch / t_forward, "images/s"),
        result(f"vgg16_train_images_per_s_{tag}", batch / t_train, "images/s"),
        result(
            f"vgg16_forward_efficiency_{tag}", forward_gflops / reference, "ratio", 0.8
        ),
        result(
            f"vgg16_train_step_efficiency_{tag}", train_gflops / reference, "ratio", 0.6
        ),
    ]
    settings = {
        "batch": batch,
        "image_size": size,
        "precision": args.precision,
        "xla": args.xla,
        "vgg16_forward_gflop_per_image": vgg16_forward_flops(size) / 1e9,
        "reference_matmul": compute_dtype,
    }
    return write_report(args.output, results, settings)


if __name__ == "__main__":
    main()
