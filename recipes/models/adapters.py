"""torchvision and timm classification networks behind the project's model shape: ``features``, ``feature_dim``, ``head``.

``model=torchvision model.name=resnet18`` builds any network of ``torchvision.models.list_models(module=torchvision.models)``
with ``torchvision.models.get_model``; ``model=timm model.name=resnet18`` builds one with ``timm.create_model`` (the
optional extra ``timm``). Their classifier becomes ``head``: a linear layer to ``num_outputs``, or nothing
(``num_outputs=0``) so that siamese, SimCLR and regression size their own from ``feature_dim``.

Grey images (``in_channels=1``): the first convolution is replaced by one of ``in_channels`` inputs whose kernel
is the sum of the RGB kernels divided by ``in_channels``: on a grey image it computes what the RGB convolution
computes on that image repeated in three channels, so pretrained weights keep their meaning, at a third of the cost.

Pretrained weights (``weights=IMAGENET1K_V1``, ``DEFAULT``, ...; torchvision's names) are read from the torch hub
cache, ``torch.hub.get_dir()/checkpoints/<file>``; runs never download, so a missing file is one ConfigError that
names the file and the folder to put it in.
"""

from __future__ import annotations

import difflib
import os
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision
from torch import Tensor, nn

from losses.errors import ConfigError, check_integer

# torchvision networks whose constructor takes the input size (the position embedding is sized by it)
SIZE_ARGUMENT = {"vit_": "image_size", "maxvit_": "input_size"}
# torchvision networks with auxiliary classifiers in training mode: built without them
NO_AUX = {"googlenet": {"aux_logits": False}, "inception_v3": {"aux_logits": False}}


def close_matches(name: str, names: list[str]) -> str:
    """``; close matches: a, b, c`` for a mistyped ``name`` (difflib), or an empty string."""
    found = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    return f"; close matches: {', '.join(found)}" if found else ""


def check_name(name: object, names: list[str], what: str, listing: str) -> str:
    """``name`` must be one of ``names``: otherwise a ConfigError with its close matches and where the full list is."""
    if not isinstance(name, str) or name not in names:
        hint = close_matches(name, names) if isinstance(name, str) else ""
        raise ConfigError(f"model: name must be {what} (got {name!r}){hint}; all {len(names)}: {listing}")
    return name


def classification_models() -> list[str]:
    return torchvision.models.list_models(module=torchvision.models)


def hub_file(url: str) -> str:
    """Where ``torch.hub.load_state_dict_from_url`` keeps (and first looks for) the file of ``url``."""
    return os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(urlparse(url).path))


def cached_weights(model_name: str, weights: str | None, setting: str = "weights") -> Any:
    """torchvision's weights enum member ``weights`` of ``model_name`` (None for None), once its file is in the cache.

    The file is then loaded by torchvision itself (``load_state_dict_from_url`` reads the cache and downloads only
    what is absent, which this check rules out).
    """
    if weights is None:
        return None
    enum = torchvision.models.get_model_weights(model_name)
    names = list(enum.__members__)
    if weights not in names:
        raise ConfigError(
            f"model: {setting} must be one of {', '.join(names)} for {model_name} (got {weights!r})"
            + close_matches(str(weights), names)
        )
    chosen = enum[weights]
    path = hub_file(chosen.url)
    if not os.path.isfile(path):
        folder, file = os.path.split(path)
        raise ConfigError(
            f"model: {setting}={weights} of {model_name} is not in the torch hub cache, and runs never download: "
            f"place {file} in {folder} (torch.hub.get_dir()/checkpoints; TORCH_HOME moves it), e.g. fetched from {chosen.url}"
        )
    return chosen


def adapt_first_conv(net: nn.Module, in_channels: int) -> None:
    """Give the first 3-channel convolution of ``net`` ``in_channels`` inputs (grey images: 1), kernels summed over RGB."""
    check_integer("model", "in_channels", in_channels, low=1)
    if in_channels == 3:
        return
    for parent in net.modules():
        for child_name, conv in parent.named_children():
            if isinstance(conv, nn.Conv2d) and conv.in_channels == 3:
                new = nn.Conv2d(
                    in_channels,
                    conv.out_channels,
                    conv.kernel_size,
                    conv.stride,
                    conv.padding,
                    conv.dilation,
                    conv.groups,
                    conv.bias is not None,
                    conv.padding_mode,
                )
                with torch.no_grad():
                    new.weight.copy_((conv.weight.sum(1, keepdim=True) / in_channels).expand_as(new.weight))
                    if conv.bias is not None:
                        new.bias.copy_(conv.bias)
                setattr(parent, child_name, new)
                return
    raise ConfigError(f"model: in_channels={in_channels} needs a first convolution of 3 inputs; {type(net).__name__} has none")


def split_classifier(net: nn.Module) -> int:
    """Replace ``net``'s last linear (or 1x1 convolution) layer, its classifier, by ``nn.Identity``; its input width."""
    named = [(n, m) for n, m in net.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    name, layer = named[-1]
    parent = net.get_submodule(name.rpartition(".")[0]) if "." in name else net
    setattr(parent, name.rpartition(".")[2], nn.Identity())
    return layer.in_features if isinstance(layer, nn.Linear) else layer.in_channels


def probe(net: nn.Module, in_channels: int, image_size: int | None, name: str, hint: str) -> None:
    """One eval-mode forward of a zero image, so that an input size the network cannot take is a ConfigError now."""
    if image_size is None:
        return
    check_integer("model", "image_size", image_size, low=1)
    was_training = net.training
    try:
        with torch.no_grad():
            net.eval()(torch.zeros(1, in_channels, image_size, image_size))
    except (RuntimeError, ValueError, AssertionError, IndexError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(
            f"model: {name} does not take {in_channels}x{image_size}x{image_size} images (image_size={image_size}): "
            f"{first}; {hint}"
        ) from None
    finally:
        net.train(was_training)


class Classifier(nn.Module):
    """``features`` (the network without its classifier) to ``feature_dim`` numbers, then ``head`` to ``num_outputs``."""

    outputs = ("logits", "embedding")  # what tasks may take from it (recipes/run/combinations.py)

    def __init__(self, features: nn.Module, feature_dim: int, num_outputs: int) -> None:
        super().__init__()
        check_integer("model", "num_outputs", num_outputs, low=0)
        self.features, self.feature_dim = features, feature_dim
        self.head = nn.Linear(feature_dim, num_outputs) if num_outputs else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


class TorchvisionClassifier(Classifier):
    """Any torchvision classification network by ``name``; ``weights`` are torchvision's names, read from the hub cache.

    ``image_size`` (the data's) sizes vision transformers built without weights (pretrained ones take 224) and is
    checked by one forward pass, so an input the network cannot take is refused before data loads.
    """

    def __init__(
        self,
        name: str = "resnet18",
        num_outputs: int = 10,
        in_channels: int = 3,
        weights: str | None = None,
        image_size: int | None = None,
    ) -> None:
        listing = "torchvision.models.list_models(module=torchvision.models)"
        check_name(name, classification_models(), "a torchvision classification model", listing)
        chosen = cached_weights(name, weights)
        extra = dict(NO_AUX.get(name, {}))
        for prefix, argument in SIZE_ARGUMENT.items():
            if name.startswith(prefix) and image_size is not None and chosen is None:
                extra[argument] = image_size
        net = torchvision.models.get_model(name, weights=chosen, **extra)
        adapt_first_conv(net, in_channels)
        feature_dim = split_classifier(net)
        sized = name.startswith(tuple(SIZE_ARGUMENT))
        hint = "it takes the size it was built for (224 with weights)" if sized else "use larger images or another network"
        probe(net, in_channels, image_size, name, hint)
        super().__init__(net, feature_dim, num_outputs)


class TimmClassifier(Classifier):
    """A timm network (``timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels)``) and a head."""

    def __init__(
        self, name: str = "resnet18", num_outputs: int = 10, in_channels: int = 3, image_size: int | None = None
    ) -> None:
        timm = import_timm()
        check_name(name, timm.list_models(), "a timm model", "timm.list_models()")
        check_integer("model", "in_channels", in_channels, low=1)
        extra = {"img_size": image_size} if image_size is not None and name.startswith(("vit_", "deit_", "beit_")) else {}
        net = timm.create_model(name, pretrained=False, num_classes=0, in_chans=in_channels, **extra)
        feature_dim = int(getattr(net, "head_hidden_size", None) or net.num_features)
        probe(net, in_channels, image_size, name, "use larger images or a network with less downsampling")
        super().__init__(net, feature_dim, num_outputs)


def import_timm() -> Any:
    try:
        import timm
    except ImportError:
        raise ConfigError(
            "model: model=timm needs timm, the optional extra 'timm': pip install 'loss-recipes[timm]' (or pip install timm)"
        ) from None
    return timm
