"""The query-speed measurements: throughput against a raw forward, and ZSDB3KD's calls per phase."""
from __future__ import annotations

import torch
from torch import nn

from labkit.core.data import DatasetInfo
from labkit.studies.query_speed import box_throughput, zsdb3kd_calls


class Centroids(nn.Module):
    """A 3-class nearest-centroid teacher on 2-D points."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("c", torch.tensor([[0.2, 0.2], [0.8, 0.3], [0.5, 0.85]]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.cdist(x.reshape(x.shape[0], -1), self.c)


def test_box_throughput_is_a_positive_ratio() -> None:
    t = box_throughput(Centroids(), torch.rand(2000, 2), batch_size=500, access="score", num_classes=3, repeats=2)
    assert t.images == 2000 and t.box_per_s > 0 and t.raw_per_s > 0 and t.ratio > 0


def test_zsdb3kd_calls_count_every_phase() -> None:
    info = DatasetInfo("toy-centroids", ("a", "b", "c"), (2,))
    c = zsdb3kd_calls(Centroids(), info, profile="smoke", iterations=2, noise="authors")  # 2-D points: i.i.d. noise
    assert c.iterations == 2 and c.pseudo_samples == 3 * 3
    assert {"initial noise", "nearest boundary", "step away", "soft labels"} <= set(c.calls)
    assert all(c.queries[p] >= c.calls[p] > 0 for p in c.calls)
    assert c.calls_per_iteration == (c.calls["nearest boundary"] + c.calls["step away"]) / 2
