"""The models layer of selflabel: backbones, heads, prototypes and checkpoint loading.

Backbones map ``(B, C, H, W)`` images to pooled features ``(B, out_dim)`` at any resolution
≥ ``min_input_size``; ResNets use torchvision's parameter names and heads use official SwAV/SeLa
names, so external checkpoints load with :func:`load_pretrained`. See docs/models.md.

Example::

    from selflabel.models import ProjectionHead, Prototypes, build_backbone

    backbone = build_backbone("smallcnn", in_channels=1)
    head = ProjectionHead(backbone.out_dim, hidden_dim=512, out_dim=64)
    protos = Prototypes(64, 30)
    scores = protos(head(backbone(images)))[0]          # (B, 30)
"""

from selflabel.models.alexnet import AlexNet
from selflabel.models.checkpoints import (
    LoadReport,
    UnsafeCheckpointError,
    load_pretrained,
    read_state_dict,
)
from selflabel.models.heads import MultiHeadClassifier, ProjectionHead, Prototypes
from selflabel.models.registry import available_backbones, build_backbone
from selflabel.models.resnet import BasicBlock, Bottleneck, ResNet, resnet18, resnet34, resnet50
from selflabel.models.small_cnn import SmallCNN

__all__ = [
    "AlexNet",
    "BasicBlock",
    "Bottleneck",
    "LoadReport",
    "MultiHeadClassifier",
    "ProjectionHead",
    "Prototypes",
    "ResNet",
    "SmallCNN",
    "UnsafeCheckpointError",
    "available_backbones",
    "build_backbone",
    "load_pretrained",
    "read_state_dict",
    "resnet18",
    "resnet34",
    "resnet50",
]
