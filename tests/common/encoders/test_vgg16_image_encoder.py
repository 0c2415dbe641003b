import os
from unittest import mock

import numpy as np

from common.encoders import VGG16ImageEncoder
from common.testing import TestCase


class VGG16ImageEncoderTest(TestCase):
    def setUp(self):
        super().setUp()
        self.images = np.random.default_rng(0).integers(
            0, 256, size=(2, 32, 32, 3), dtype=np.uint8
        )

    def test_regions_are_the_backbone_feature_map_after_caffe_preprocessing(self):
        encoder = VGG16ImageEncoder(
            (64, 64, 3), weights=None, feature_layer="block5_conv3"
        )
        images = np.random.default_rng(1).integers(0, 256, (2, 64, 64, 3), np.uint8)
        out = encoder(images)
        # Independent preprocessing: RGB -> BGR, minus the ImageNet BGR means.
        bgr = images[..., ::-1].astype(np.float32) - np.array(
            [103.939, 116.779, 123.68], np.float32
        )
        feature_map = encoder.backbone(bgr).numpy()  # [2, 4, 4, 512]
        regions = feature_map.reshape(2, 16, 512)
        self.assertAllClose(out["region_features"], regions, atol=1e-4, rtol=1e-5)
        self.assertAllClose(
            out["pooled_features"], regions.mean(1), atol=1e-4, rtol=1e-5
        )
        # float pixels in 0-255 give the same result as uint8
        self.assertAllClose(encoder(images.astype("float32")), out, atol=1e-4)

    def test_layer_contract_with_projection(self):
        self.run_layer_test(
            VGG16ImageEncoder,
            {"image_shape": (32, 32, 3), "weights": None, "projection_dim": 8},
            (self.images,),
            expected_output_shape={
                "region_features": (2, 1, 8),
                "pooled_features": (2, 8),
            },
            expected_num_trainable_weights=28,
            mixed_precision_atol=0.5,
        )

    def test_frozen_backbone(self):
        encoder = VGG16ImageEncoder(
            (32, 32, 3), weights=None, projection_dim=8, trainable=False
        )
        encoder(self.images)
        self.assertEqual(encoder.trainable_weights, [])
        encoder.trainable = True
        self.assertEqual(len(encoder.trainable_weights), 28)

    def test_local_weights_file_and_saving(self):
        encoder = VGG16ImageEncoder((32, 32, 3), weights=None)
        path = os.path.join(self.get_temp_dir(), "vgg16_notop.weights.h5")
        encoder.backbone.save_weights(path)
        from_file = VGG16ImageEncoder((32, 32, 3), weights=path)
        self.assertAllClose(from_file(self.images), encoder(self.images), atol=1e-5)
        self.run_model_saving_test(encoder, (self.images,), atol=1e-5)

    def test_six_channel_frames(self):
        encoder = VGG16ImageEncoder((32, 32, 6), weights=None)
        out = encoder(np.zeros((1, 32, 32, 6), "float32"))
        self.assertEqual(tuple(out["pooled_features"].shape), (1, 512))

    def test_export_takes_uint8_pixels(self):
        encoder = VGG16ImageEncoder((32, 32, 3), weights=None, projection_dim=8)
        self.run_export_test(encoder, {"images": self.images}, atol=1e-4)

    def test_clear_errors(self):
        with self.assertRaisesRegex(FileNotFoundError, "missing.h5"):
            VGG16ImageEncoder((32, 32, 3), weights="missing.h5")
        with self.assertRaisesRegex(ValueError, "3-channel"):
            VGG16ImageEncoder((32, 32, 6), weights="imagenet")
        with self.assertRaisesRegex(ValueError, "at least 32x32"):
            VGG16ImageEncoder((16, 16, 3), weights=None)
        with self.assertRaisesRegex(ValueError, "feature_layer.*'block9'"):
            VGG16ImageEncoder((32, 32, 3), weights=None, feature_layer="block9")
        encoder = VGG16ImageEncoder((32, 32, 3), weights=None)
        with self.assertRaisesRegex(ValueError, r"\[B, 32, 32, 3\].*\(2, 40, 40, 3\)"):
            encoder(np.zeros((2, 40, 40, 3), "uint8"))

    def test_imagenet_download_failure_names_the_cache_path(self):
        keras_home = self.get_temp_dir()
        failing = mock.patch(
            "keras.src.utils.file_utils.get_file",
            side_effect=Exception("URL fetch failure: no network"),
        )
        with failing, mock.patch.dict(os.environ, {"KERAS_HOME": keras_home}):
            with self.assertRaises(OSError) as context:
                VGG16ImageEncoder((32, 32, 3), weights="imagenet")
        message = str(context.exception)
        self.assertIn(os.path.join(keras_home, "models"), message)
        self.assertIn("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", message)
        self.assertIn("no network", message)
