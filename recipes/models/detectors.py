"""torchvision's FCOS and RetinaNet whose losses come from the detection task's slots (``model=fcos``, ``model=retinanet``).

The adapter runs torchvision's backbone (a ResNet or MobileNetV3 with an FPN), head and anchors, and torchvision's
own matching of anchors to boxes (``FCOS.compute_loss``: centre sampling and scale ranges; ``RetinaNet.compute_loss``:
IoU thresholds). Its heads hand that matching back instead of computing torchvision's losses (sigmoid focal loss,
GIoU or L1), and :meth:`TorchvisionDetector.loss_terms` scores the matched anchors with the task's ``loss`` and
``box_loss`` slots. Detections come from torchvision's own ``postprocess_detections`` (top-k per level, NMS).

Conventions shared with the project's detector (``recipes/models/detector.py``): the head predicts ``K + 1`` scores
per anchor (channel ``K``, "background", is read by softmax losses; sigmoid losses read the first ``K``); both slot
losses are sums normalised by the number of positive anchors in the batch; boxes reach the box loss as xyxy in units
of their anchor's size (sqrt of its area: the stride for FCOS), which leaves IoU losses unchanged and puts L1 on the
scale of the project's detector. FCOS also trains its centre-ness branch (binary cross-entropy, as in torchvision;
``centerness_weight=0`` drops it): it is FCOS's third term, of no slot's kind, and reported as ``centerness``.

Images go to the backbone as the datamodule gives them (already normalised, any size; no resizing), padded at the
bottom and right to a multiple of ``size_divisible`` as torchvision pads them. Batch norm trains (a backbone built
without weights has nothing to freeze); ``weights_backbone`` loads a backbone's ImageNet weights from the torch
hub cache, as ``model=torchvision`` does.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import resnet
from torchvision.models.detection import FCOS, RetinaNet
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.backbone_utils import mobilenet_backbone, resnet_fpn_backbone
from torchvision.models.detection.fcos import FCOSHead
from torchvision.models.detection.image_list import ImageList
from torchvision.models.detection.retinanet import RetinaNetHead
from torchvision.ops.feature_pyramid_network import LastLevelP6P7

from losses.errors import check, check_integer, check_number
from recipes.models.adapters import adapt_first_conv, cached_weights

RESNETS = tuple(n for n in resnet.__all__ if n[0].islower() and "resne" in n)  # resnet18 ... wide_resnet101_2
MOBILENETS = ("mobilenet_v3_large", "mobilenet_v3_small")
BACKBONES = tuple(f"{n}_fpn" for n in RESNETS + MOBILENETS)
IGNORED = -2  # torchvision's Matcher.BETWEEN_THRESHOLDS: anchors left out of the classification loss (RetinaNet)


class MatchedFCOSHead(FCOSHead):
    """FCOS's head; ``compute_loss`` returns torchvision's matching (``matched_idxs``) instead of its losses."""

    def compute_loss(self, targets, head_outputs, anchors, matched_idxs):  # noqa: ANN001, ANN201 (torchvision's hook)
        return matched_idxs


class MatchedRetinaNetHead(RetinaNetHead):
    """RetinaNet's head; ``compute_loss`` returns torchvision's matching (``matched_idxs``) instead of its losses."""

    def compute_loss(self, targets, head_outputs, anchors, matched_idxs):  # noqa: ANN001, ANN201 (torchvision's hook)
        return matched_idxs


class Raw(NamedTuple):
    """What one forward pass gives: the head's outputs ``[B, L, ...]``, the anchors per image ``[L, 4]``, the
    anchors per level, and the image size the boxes are clipped to."""

    head: dict[str, Tensor]
    anchors: list[Tensor]
    counts: list[int]
    image_size: tuple[int, int]


def fpn_backbone(backbone: str, in_channels: int, weights: str | None) -> nn.Module:
    """A ResNet or MobileNetV3 with an FPN and P6/P7 (256 channels), all of it trained, ``in_channels`` inputs."""
    check("model", backbone in BACKBONES, f"backbone must be one of {', '.join(BACKBONES)}", backbone)
    base = backbone.removesuffix("_fpn")
    chosen = cached_weights(base, weights, "weights_backbone")
    common = {"weights": chosen, "norm_layer": nn.BatchNorm2d, "trainable_layers": 0, "extra_blocks": LastLevelP6P7(256, 256)}
    if base in MOBILENETS:
        body = mobilenet_backbone(backbone_name=base, fpn=True, **common)
    else:
        body = resnet_fpn_backbone(backbone_name=base, returned_layers=[2, 3, 4], **common)
    adapt_first_conv(body, in_channels)
    return body.requires_grad_(True)


@torch.no_grad()
def level_strides(body: nn.Module, in_channels: int, size: int = 256) -> list[int]:
    """The stride of each feature level the backbone returns, from one forward pass of a ``size``-pixel image."""
    was_training = body.training
    features = body.eval()(torch.zeros(1, in_channels, size, size))
    body.train(was_training)
    return [size // f.shape[-1] for f in features.values()]


class TorchvisionDetector(nn.Module):
    """torchvision's ``FCOS`` or ``RetinaNet`` (``name``) on an FPN ``backbone``, trained through the task's slot losses.

    ``forward(images) -> Raw``; :meth:`loss_terms` matches anchors to boxes as torchvision does and calls the slot
    losses; :meth:`detect` gives torchmetrics' detection dicts. ``radius`` is FCOS's centre sampling (in strides);
    ``fg_iou``/``bg_iou`` are RetinaNet's matching thresholds (Lin et al. 2017: 0.5 and 0.4).
    """

    outputs = ("detector outputs",)  # what tasks may take from it (recipes/run/combinations.py)

    def __init__(
        self,
        name: str = "fcos",
        backbone: str = "resnet50_fpn",
        num_classes: int = 10,
        in_channels: int = 3,
        weights_backbone: str | None = None,
        radius: float = 1.5,
        fg_iou: float = 0.5,
        bg_iou: float = 0.4,
        centerness_weight: float = 1.0,
        prior: float = 0.01,
        size_divisible: int = 32,
    ) -> None:
        super().__init__()
        check("model", name in ("fcos", "retinanet"), "name must be fcos or retinanet", name)
        check_integer("model", "num_classes", num_classes, low=1)
        check_integer("model", "size_divisible", size_divisible, low=1)
        check_number("model", "radius", radius, low=0, low_open=True)
        check_number("model", "centerness_weight", centerness_weight, low=0)
        check_number("model", "prior", prior, 0, 1, low_open=True, high_open=True)
        check_number("model", "bg_iou", bg_iou, 0, 1)
        check_number("model", "fg_iou", fg_iou, bg_iou, 1)
        self.name, self.num_classes, self.size_divisible = name, num_classes, size_divisible
        self.centerness_weight = float(centerness_weight)
        body = fpn_backbone(backbone, in_channels, weights_backbone)
        strides = level_strides(body, in_channels)
        scores = num_classes + 1  # the last is "background", for softmax losses
        if name == "fcos":
            anchors = AnchorGenerator(tuple((s,) for s in strides), ((1.0,),) * len(strides))  # one point per location
            head = MatchedFCOSHead(body.out_channels, 1, scores)
            self.net = FCOS(body, scores, anchor_generator=anchors, head=head, center_sampling_radius=radius)
        else:  # three sizes from 4 strides and three aspect ratios per location (Lin et al. 2017, Sec. 4)
            sizes = tuple((4 * s, round(4 * s * 2 ** (1 / 3)), round(4 * s * 2 ** (2 / 3))) for s in strides)
            anchors = AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(strides))
            head = MatchedRetinaNetHead(body.out_channels, anchors.num_anchors_per_location()[0], scores)
            self.net = RetinaNet(body, scores, anchor_generator=anchors, head=head, fg_iou_thresh=fg_iou, bg_iou_thresh=bg_iou)
        with torch.no_grad():  # classes start at probability `prior`, background at logit 0 (as in the project's detector)
            bias = head.classification_head.cls_logits.bias  # per anchor: K + 1 scores
            bias.fill_(-math.log((1 - prior) / prior))
            bias[num_classes::scores] = 0.0

    def forward(self, images: Tensor) -> Raw:
        height, width = images.shape[-2:]
        pad_h, pad_w = -height % self.size_divisible, -width % self.size_divisible
        padded = F.pad(images, (0, pad_w, 0, pad_h)) if pad_h or pad_w else images
        features = list(self.net.backbone(padded).values())
        head = self.net.head(features)
        # anchors in float32 under autocast (their dtype is that of the maps handed to the generator)
        shapes = [f.detach()[:1, :1].float() for f in features]
        anchors = self.net.anchor_generator(ImageList(padded, [(height, width)] * len(images)), shapes)
        per_location = head["cls_logits"].shape[1] // sum(f.shape[-2] * f.shape[-1] for f in features)
        counts = [f.shape[-2] * f.shape[-1] * per_location for f in features]
        return Raw(head, anchors, counts, (int(height), int(width)))

    def match(self, raw: Raw, targets: list[dict[str, Tensor]]) -> Tensor:
        """torchvision's matching ``[B, L]``: the index of each anchor's box, -1 for background, -2 ignored."""
        if self.name == "fcos":
            return torch.stack(self.net.compute_loss(targets, raw.head, raw.anchors, raw.counts))
        return torch.stack(self.net.compute_loss(targets, raw.head, raw.anchors))

    def loss_terms(
        self, raw: Raw, boxes: Tensor, labels: Tensor, class_loss: Callable[[Tensor, Tensor], Tensor], box_loss: nn.Module
    ) -> dict[str, Tensor]:
        """Both slot losses (``class_loss(logits [N, K+1], classes [N])``, ``box_loss``) on torchvision's matching,
        each normalised by the number of positive anchors; FCOS adds its centre-ness term."""
        k = self.num_classes
        targets = [{"boxes": b[lab >= 0].float(), "labels": lab[lab >= 0]} for b, lab in zip(boxes, labels)]
        matched = self.match(raw, targets)
        classes, matched_boxes = [], []
        for target, index in zip(targets, matched):
            if len(target["labels"]):
                chosen = index.clamp_min(0)
                classes.append(torch.where(index >= 0, target["labels"][chosen], k))
                matched_boxes.append(target["boxes"][chosen])
            else:
                classes.append(torch.full_like(index, k))
                matched_boxes.append(index.new_zeros((len(index), 4), dtype=torch.float32))
        classes, matched_boxes = torch.stack(classes), torch.stack(matched_boxes)
        positive, counted = matched >= 0, matched != IGNORED
        count = positive.sum().clamp_min(1)
        terms = {"loss": class_loss(raw.head["cls_logits"][counted], classes[counted]) / count}
        anchors = torch.stack(raw.anchors)[positive]
        predicted = self.decode(raw.head["bbox_regression"].float()[positive], anchors)
        scale = ((anchors[:, 2] - anchors[:, 0]) * (anchors[:, 3] - anchors[:, 1])).sqrt()[:, None]
        terms["box_loss"] = box_loss(predicted / scale, matched_boxes[positive] / scale) / count
        if self.name == "fcos" and self.centerness_weight > 0:
            centerness = self.centerness(raw, anchors, matched_boxes[positive], positive)
            terms["centerness"] = self.centerness_weight * centerness / count
        return terms

    def decode(self, codes: Tensor, anchors: Tensor) -> Tensor:
        """Regression outputs ``[N, 4]`` of anchors ``[N, 4]`` as xyxy boxes in pixels (torchvision's box coder)."""
        coder = self.net.box_coder  # FCOS: distances to the sides in anchor sizes; RetinaNet: deltas (Girshick 2015)
        return coder.decode(codes, anchors) if self.name == "fcos" else coder.decode_single(codes, anchors)

    def centerness(self, raw: Raw, anchors: Tensor, boxes: Tensor, positive: Tensor) -> Tensor:
        """FCOS's centre-ness loss (Tian et al. 2019, Eq. 3), summed over the positive anchors, as torchvision computes it."""
        ltrb = self.net.box_coder.encode(anchors, boxes)
        sides, heights = ltrb[:, [0, 2]], ltrb[:, [1, 3]]
        target = (sides.amin(1) / sides.amax(1) * heights.amin(1) / heights.amax(1)).sqrt()
        logits = raw.head["bbox_ctrness"].float().squeeze(-1)[positive]
        return F.binary_cross_entropy_with_logits(logits, target, reduction="sum")

    @torch.no_grad()
    def detect(
        self, raw: Raw, probabilities: Callable[[Tensor], Tensor], score_threshold: float, nms_iou: float, max_detections: int
    ) -> list[dict[str, Tensor]]:
        """torchvision's postprocessing (per level top-k, score threshold, class-wise NMS) on the task's class
        probabilities ``probabilities(logits [..., K+1]) -> [..., K]``, handed over as logits it takes the sigmoid of."""
        head = {key: value.float() for key, value in raw.head.items()}
        head["cls_logits"] = torch.logit(probabilities(head["cls_logits"]), eps=1e-6)
        per_level = {key: list(value.split(raw.counts, dim=1)) for key, value in head.items()}
        anchors = [list(a.split(raw.counts)) for a in raw.anchors]
        self.net.score_thresh, self.net.nms_thresh, self.net.detections_per_img = score_threshold, nms_iou, max_detections
        return self.net.postprocess_detections(per_level, anchors, [raw.image_size] * len(raw.anchors))
