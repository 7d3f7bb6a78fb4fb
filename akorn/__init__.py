"""akorn: Artificial Kuramoto Oscillatory Neurons in PyTorch."""
from akorn.coupling import AttentionCoupling, ConvCoupling
from akorn.gta import GTA
from akorn.kuramoto import KuramotoLayer, KuramotoResult
from akorn.networks import IteratedBlock, IteratedNetwork, KuramotoStack
from akorn.oscillators import normalize, order_parameter, project_tangent, rotate_pairs
from akorn.readout import Readout

__version__ = "0.1.0"

__all__ = [
    "AttentionCoupling",
    "ConvCoupling",
    "GTA",
    "IteratedBlock",
    "IteratedNetwork",
    "KuramotoLayer",
    "KuramotoResult",
    "KuramotoStack",
    "Readout",
    "normalize",
    "order_parameter",
    "project_tangent",
    "rotate_pairs",
    "__version__",
]
