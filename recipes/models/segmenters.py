"""torchvision's DeepLabV3, FCN and LR-ASPP heads on a selectable torchvision backbone (``model=deeplabv3``, ...).

The heads are torchvision's (``DeepLabHead``, ``FCNHead``, ``LRASPP``) on a ResNet (``layer4`` out, ``layer3`` for
the auxiliary head, ``layer2`` as LR-ASPP's low level) or a MobileNetV3 (the stages torchvision's own builders
take). Bottleneck ResNets (50 and up) are dilated to an output stride of 8 as in torchvision; ResNet-18/34 cannot
be dilated (torchvision's BasicBlock) and keep their stride of 32. Logits are upsampled to the input size.

The auxiliary head (DeepLabV3 and FCN; ``aux_weight > 0``) trains through the same ``loss`` slot: the task adds
``aux_weight`` times the slot's loss on the auxiliary logits (torchvision's reference recipe: 0.5); it is built
only when weighted and runs in training only. ``weights_backbone`` loads the backbone's ImageNet weights from the
torch hub cache. Grey images adapt the first convolution (see ``recipes/models/adapters.py``).
"""

from __future__ import annotations

from collections import OrderedDict

import torch.nn.functional as F
import torchvision
from torch import Tensor, nn
from torchvision.models._utils import IntermediateLayerGetter
from torchvision.models.segmentation.deeplabv3 import DeepLabHead
from torchvision.models.segmentation.fcn import FCNHead
from torchvision.models.segmentation.lraspp import LRASPPHead

from losses.errors import check, check_integer, check_number
from recipes.models.adapters import adapt_first_conv, cached_weights
from recipes.models.detectors import MOBILENETS, RESNETS

UNDILATED = ("resnet18", "resnet34")  # BasicBlock: no dilation


def backbone_layers(backbone: str, in_channels: int, weights: str | None, lraspp: bool) -> tuple[nn.Module, int, int]:
    """The backbone returning ``{"out", "aux"}`` (or LR-ASPP's ``{"high", "low"}``) and those two maps' channels."""
    names = RESNETS + MOBILENETS
    check("model", backbone in names, f"backbone must be one of {', '.join(names)}", backbone)
    chosen = cached_weights(backbone, weights, "weights_backbone")
    first, second = ("high", "low") if lraspp else ("out", "aux")
    if backbone in MOBILENETS:
        features = torchvision.models.get_model(backbone, weights=chosen, dilated=True).features
        stages = [0] + [i for i, block in enumerate(features) if getattr(block, "_is_cn", False)] + [len(features) - 1]
        out, aux = stages[-1], stages[-4]  # output stride 16 (dilated) and 8
        channels = features[out].out_channels, features[aux].out_channels
        body = IntermediateLayerGetter(features, {str(out): first, str(aux): second})
    else:
        dilation = None if backbone in UNDILATED else [False, True, True]
        net = torchvision.models.get_model(backbone, weights=chosen, replace_stride_with_dilation=dilation)
        width = net.fc.in_features
        second_layer, divisor = ("layer2", 4) if lraspp else ("layer3", 2)
        channels = width, width // divisor
        body = IntermediateLayerGetter(net, {"layer4": first, second_layer: second})
    adapt_first_conv(body, in_channels)
    return body, *channels


class TorchvisionSegmenter(nn.Module):
    """``forward(images) -> logits [B, num_classes, H, W]``; :meth:`segment` also gives the auxiliary logits in training."""

    outputs = ("pixel logits",)  # what tasks may take from it (recipes/run/combinations.py)

    def __init__(
        self,
        name: str = "deeplabv3",
        backbone: str = "resnet50",
        num_classes: int = 11,
        in_channels: int = 3,
        weights_backbone: str | None = None,
        aux_weight: float = 0.5,
    ) -> None:
        super().__init__()
        check("model", name in ("deeplabv3", "fcn", "lraspp"), "name must be deeplabv3, fcn or lraspp", name)
        check_integer("model", "num_classes", num_classes, low=2)
        check_number("model", "aux_weight", aux_weight, low=0)
        no_aux = "aux_weight must be 0 for lraspp (it has no auxiliary head)"
        check("model", name != "lraspp" or aux_weight == 0, no_aux, aux_weight)
        self.name, self.aux_weight = name, float(aux_weight)
        self.backbone, channels, aux_channels = backbone_layers(backbone, in_channels, weights_backbone, name == "lraspp")
        if name == "lraspp":
            self.classifier = LRASPPHead(aux_channels, channels, num_classes, inter_channels=128)
        else:
            self.classifier = DeepLabHead(channels, num_classes) if name == "deeplabv3" else FCNHead(channels, num_classes)
        self.aux_classifier = FCNHead(aux_channels, num_classes) if self.aux_weight else None

    def forward(self, images: Tensor) -> Tensor:
        return self.segment(images)[0]

    def segment(self, images: Tensor) -> tuple[Tensor, Tensor | None]:
        """Logits at the input size, and the auxiliary head's (training with ``aux_weight > 0``; else None)."""
        size = images.shape[-2:]
        features: OrderedDict[str, Tensor] = self.backbone(images)
        logits = self.classifier(features) if self.name == "lraspp" else self.classifier(features["out"])
        logits = F.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        if self.aux_classifier is None or not self.training:
            return logits, None
        aux = F.interpolate(self.aux_classifier(features["aux"]), size=size, mode="bilinear", align_corners=False)
        return logits, aux
