"""``Method.feature_centres``: the main head's cluster centres in the features' space, where the
clustering benchmark can start k-means (``eval.kmeans_init: prototypes``)."""

from __future__ import annotations

import torch
from _methods_toys import TinyBackbone

from selflabel.methods.network import EmbeddingNetwork
from selflabel.methods.offline import DeepClusterV2
from selflabel.methods.sela import SeLa
from selflabel.methods.swav import SwAV
from selflabel.methods.swavsela import SwAVSeLa


def swav(embedding_dim: int = 0, n_prototypes: int | list[int] = 5) -> SwAV:
    torch.manual_seed(0)
    net = EmbeddingNetwork(TinyBackbone(), n_prototypes=n_prototypes, hidden_dim=16,
                           embedding_dim=embedding_dim)
    return SwAV(net)


def test_swav_without_projection_gives_its_first_heads_unit_prototypes() -> None:
    method = swav(n_prototypes=[5, 7])
    with torch.no_grad():
        method.network.prototypes.weights()[0].mul_(3.0)  # not normalised any more
    centres = method.feature_centres()
    assert centres is not None
    assert centres.shape == (5, TinyBackbone.out_dim)
    torch.testing.assert_close(centres.norm(dim=1), torch.ones(5))
    # their arg-max over normalised features is the head's own cluster
    images = torch.randn(12, 1, 10, 10, generator=torch.Generator().manual_seed(1))
    method.eval()
    f = torch.nn.functional.normalize(method.features(images), dim=1)
    assert torch.equal((f @ centres.T).argmax(1), method.cluster_scores(images).argmax(1))


def test_prototypes_behind_a_projection_are_not_in_the_features_space() -> None:
    assert swav(embedding_dim=4).feature_centres() is None


def test_a_linear_head_has_no_centres_and_swavsela_gives_swavs() -> None:
    shared = TinyBackbone()
    sela = SeLa(shared, n_clusters=6, n_heads=1, dataset_size=10, label_data=lambda a: iter(()))
    assert sela.feature_centres() is None
    sw = SwAV(EmbeddingNetwork(shared, n_prototypes=3, hidden_dim=0, embedding_dim=0))
    both = SwAVSeLa(sw, sela)
    torch.testing.assert_close(both.feature_centres(), sw.feature_centres())


def test_deepcluster_v2_gives_its_centroid_prototypes() -> None:
    net = EmbeddingNetwork(TinyBackbone(), n_prototypes=[4], hidden_dim=0, embedding_dim=0)
    centres = DeepClusterV2(net, dataset_size=20).feature_centres()
    assert centres is not None
    assert centres.shape == (4, TinyBackbone.out_dim)
