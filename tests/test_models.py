"""Architectures: parameter counts of METHODS §7 and output shapes."""
import pytest
import torch

from labkit.core.errors import UnknownNameError
from labkit.core.models import MODELS, build_model, count_parameters


@pytest.mark.parametrize("name,expected", [
    ("lenet5", 61_706), ("lenet5-half", 35_820), ("lenet5-db3", 187_780), ("lenet5-db3-half", 47_645),
])
def test_lenet_parameter_counts(name, expected):
    model = build_model(name, 1, 10, 28)
    assert count_parameters(model) == expected
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("name,expected", [("resnet8", 75_290), ("resnet20", 269_722), ("resnet32", 464_154)])
def test_cifar_resnet_parameter_counts(name, expected):
    # He et al. option-A shortcuts (no parameters): the usual 0.27M ResNet-20 and 0.46M ResNet-32
    model = build_model(name, 3, 10, 32)
    assert count_parameters(model) == expected
    assert model(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_alexnet_pair_and_half_is_smaller():
    full, half = build_model("alexnet", 3, 10, 32), build_model("alexnet-half", 3, 10, 32)
    assert count_parameters(half) < 0.4 * count_parameters(full)
    full.eval()
    assert full(torch.rand(2, 3, 32, 32)).shape == (2, 10)


def test_mlp_and_registry():
    assert build_model("mlp", 2, 4)(torch.rand(5, 2)).shape == (5, 4)
    assert {"lenet5", "lenet5-half", "alexnet", "resnet8", "mlp"} <= set(MODELS)
    with pytest.raises(UnknownNameError, match="Valid models are"):
        build_model("vgg99")
