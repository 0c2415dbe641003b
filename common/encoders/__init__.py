"""Modality encoders: VGG16 images, LSTM text, Conv1D audio."""

from common.encoders.conv1d_audio_encoder import Conv1DAudioEncoder
from common.encoders.lstm_text_encoder import LSTMTextEncoder
from common.encoders.vgg16_image_encoder import VGG16ImageEncoder, build_vgg16_backbone

__all__ = [
    "Conv1DAudioEncoder",
    "LSTMTextEncoder",
    "VGG16ImageEncoder",
    "build_vgg16_backbone",
]
