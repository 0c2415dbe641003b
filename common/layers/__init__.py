"""The shared layers: attention, fusion and graph layers."""

from common.layers.attention import attention_weights, scaled_dot_product_attention
from common.layers.cross_modal_attention import CrossModalAttention
from common.layers.early_fusion import EarlyFusion
from common.layers.gated_fusion import GatedFusion
from common.layers.graph_attention import GraphAttention
from common.layers.graph_convolution import GraphConvolution
from common.layers.late_fusion import LateFusion
from common.layers.modality_graph_fusion import ModalityGraphFusion
from common.layers.self_attention_block import SelfAttentionBlock

__all__ = [
    "CrossModalAttention",
    "EarlyFusion",
    "GatedFusion",
    "GraphAttention",
    "GraphConvolution",
    "LateFusion",
    "ModalityGraphFusion",
    "SelfAttentionBlock",
    "attention_weights",
    "scaled_dot_product_attention",
]
