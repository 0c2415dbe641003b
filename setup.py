"""Distribution of the multimodal-suite: retrieval, video understanding, and the
shared multimodal core, on Keras 3 / TensorFlow."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent

setup(
    name="multimodal-suite",
    version="0.1.0",
    description=(
        "Keras 3 / TensorFlow multimodal suite: image-text retrieval and "
        "video understanding sharing one cross-modal attention core."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(
        include=[
            "common",
            "common.*",
            "retrieval",
            "retrieval.*",
            "video_understanding",
            "video_understanding.*",
        ]
    ),
    install_requires=[
        "tensorflow==2.21.*",
        "keras==3.15.*",
        "av>=12,<20",
        "faiss-cpu>=1.8",  # k-means of the IVF search index
        "numpy>=1.26,<3",
        "pillow>=10,<14",
        "tqdm>=4.66,<5",
        "matplotlib>=3.8,<4",
        "tensorboard>=2.20,<3",
        # PredictionLog protos for the warmup requests every export writes,
        # and the gRPC client; the same version as TensorFlow and TF Serving.
        "tensorflow-serving-api==2.21.*",
        # the web page (`python -m common.web`): an ASGI app and its server
        "starlette>=0.40,<2",
        "uvicorn>=0.30,<1",
        # hub:<handle> towers: TF-Hub / Kaggle downloads, resolved and cached
        "tensorflow-hub>=0.16,<0.17",
    ],
    extras_require={
        "gpu": ["tensorflow[and-cuda]==2.21.*"],
        # kept for `pip install .[serving]` in older instructions; now core.
        "serving": ["tensorflow-serving-api==2.21.*"],
        # kept for `pip install .[hub]` in older instructions; now core.
        "hub": ["tensorflow-hub>=0.16,<0.17"],
        # keras_hub:<preset> towers (CLIP, SigLIP); their tokenizers run on
        # TensorFlow Text ops
        "keras_hub": ["keras-hub>=0.32,<0.33", "tensorflow-text==2.21.*"],
        # the tests load the exports with tensorflow_hub too
        "dev": [
            "pytest>=8,<10",
            "ruff>=0.6",
            "tensorflow-hub>=0.16,<0.17",
            "keras-hub>=0.32,<0.33",
            "tensorflow-text==2.21.*",
            # the web page's browser tests drive the system's Chromium
            "selenium>=4.20,<5",
        ],
        "bench": [
            "psutil>=5.9",
            "imageio-ffmpeg>=0.5",
            "py-spy>=0.3",
        ],
    },
    entry_points={
        "console_scripts": [
            "mm-retrieval=retrieval.__main__:main",
            "mm-video=video_understanding.__main__:main",
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Framework :: TensorFlow",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
