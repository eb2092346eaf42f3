"""The batched query path: one box call per search step whatever the number of samples, the warm start
bisected in the same calls as the first random ray (and unchanged by it), and the box's precision."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from labkit import BlackBox
from labkit.core.errors import ConfigError, InvalidQueryError, UnknownNameError
from labkit.synthesis import boundary


class Centroids(nn.Module):
    """A 4-class nearest-centroid teacher on 6-value inputs."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.register_buffer("c", torch.rand(4, 6, generator=g))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -torch.cdist(x.reshape(x.shape[0], -1), self.c)


def box_of(model: nn.Module) -> BlackBox:
    return BlackBox(model, access="decision", input_shape=(6,), num_classes=4)


def points(n: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 6, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("search", ["nearest", "bd", "mbd"])
def test_calls_do_not_grow_with_the_number_of_samples(search: str) -> None:
    """Fifty times the samples (more than one old block of 1024): the same sequential depth, so about the same
    number of calls. The depth is the slowest ray's, so it may grow by a few steps, never with N."""
    calls = []
    for n in (50, 2500):
        box, x = box_of(Centroids()), points(n)
        y = box(x)
        if search == "nearest":
            boundary.nearest_boundary(box, x, y, n_directions=4, signopt_queries=30, n_probes=5, seed=1)
        elif search == "bd":
            boundary.boundary_distance(box, x, y, x, y, 4, n_directions=4)
        else:
            boundary.minimal_boundary_distance(box, x, y, x, y, 4, n_directions=3, signopt_queries_per_pair=30,
                                               n_probes=5)
        calls.append(box.calls - 1)
    assert calls[1] < 1.5 * calls[0], calls


def test_a_step_is_split_only_by_memory() -> None:
    box, x = box_of(Centroids()), points(300)
    y = box(x)
    theta = torch.randn(300, 1, 6)
    before = box.calls
    boundary.bisect_boundary(box, x, theta, y, None, 0.0, 3.0, 3.0 / 32)
    whole = box.calls - before
    box2 = box_of(Centroids())
    box2(x)
    boundary.bisect_boundary(box2, x, theta, y, None, 0.0, 3.0, 3.0 / 32, chunk=100)
    split = box2.calls - 1
    assert whole <= 6 and whole < split <= 3 * whole  # 1 check + log₂ 32 steps; chunks of 100 rays split them
    assert boundary.rays_per_call(784) == boundary.CALL_VALUES // 784 and boundary.rays_per_call(784, 7) == 7


def test_warm_start_is_the_separate_bisection_fused_into_round_zero() -> None:
    """nearest_boundary(previous=θ) must equal: random rays alone, the previous θ bisected alone on
    [0, radius], the strictly nearer kept, then Sign-OPT, while making fewer calls."""
    model = Centroids()
    x = points(60, 1)
    y = model(x).argmax(1)
    prev = torch.nn.functional.normalize(torch.randn(60, 6, generator=torch.Generator().manual_seed(2)), dim=1)
    prev[::7] = 0.0  # some samples without a previous direction
    radius = math.sqrt(6)
    fused_box = box_of(model)
    fused = boundary.nearest_boundary(fused_box, x, y, n_directions=2, signopt_queries=24, n_probes=4, seed=5,
                                      previous=prev)

    box = box_of(model)
    rand = boundary.nearest_boundary(box, x, y, n_directions=2, signopt_queries=0, seed=5)
    dist, theta = rand.distance.clone(), rand.direction.clone()
    has = (prev.abs().sum(1) > 0).nonzero().squeeze(1)
    warm = boundary.bisect_boundary(box, x[has], prev[has].unsqueeze(1), y[has], None, 0.0, radius, 0.0,
                                    rtol=boundary.DEFAULT_RTOL)
    better = warm.distance[:, 0] < dist[has]
    dist[has[better]] = warm.distance[better, 0]
    theta[has[better]] = prev[has[better]]
    g, th, _, _ = boundary.sign_opt(box, x, theta, dist, y, None, queries=24, n_probes=4, seed=5)
    th = torch.where(torch.isfinite(g).unsqueeze(1), th, torch.zeros_like(th))
    assert torch.equal(fused.distance, g) and torch.equal(fused.direction, th)
    assert fused_box.queries == box.queries and fused_box.calls < box.calls


def test_bf16_box_still_answers_ids_and_fp32_probabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_CPU_BF16", "1")  # the answer's form, whatever this CPU has
    model, x = Centroids(), points(200, 4)
    ids = BlackBox(model, access="decision", input_shape=(6,), precision="bf16")
    probs = BlackBox(model, access="score", input_shape=(6,), precision="bf16")
    assert ids.precision == "bf16" and ids(x).dtype == torch.int64
    p = probs(x)
    assert p.dtype == torch.float32 and torch.allclose(p.sum(1), torch.ones(200), atol=1e-5)
    exact = BlackBox(model, access="decision", input_shape=(6,), precision="fp32")(x)
    assert (ids(x) == exact).float().mean() > 0.9  # bf16 may flip only points right at a boundary
    assert BlackBox(model, access="decision").precision == "fp32"  # auto on the CPU
    assert BlackBox(model, access="white").precision == "fp32"  # auto: a white box's gradients stay fp32
    white = BlackBox(model, access="white", precision="bf16", input_shape=(6,))  # asked for: honoured
    xw = x.clone().requires_grad_(True)
    out = white(xw)
    out.sum().backward()
    assert white.precision == "bf16" and out.dtype == torch.float32 and xw.grad is not None
    with pytest.raises(UnknownNameError, match="fp16"):
        BlackBox(model, precision="fp16")


def test_bf16_on_a_cpu_without_it_is_refused_with_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LABKIT_CPU_BF16", "0")
    with pytest.raises(ConfigError, match="precision='fp32'"):
        BlackBox(Centroids(), access="decision", precision="bf16")
    assert BlackBox(Centroids(), access="decision", precision="auto").precision == "fp32"


class BatchSizes(nn.Module):
    """A 4-D model that records the batch of every forward and whether its input came channels-last."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 3)  # two channels: a one-channel tensor is both layouts at once
        self.seen: list[tuple[int, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append((x.shape[0], x.is_contiguous(memory_format=torch.channels_last)))
        return self.conv(x).mean((2, 3))


def test_cpu_box_answers_channels_last_in_chunks_and_the_same_as_one_nchw_call() -> None:
    torch.manual_seed(0)
    model = BatchSizes()
    x = torch.rand(1300, 2, 8, 8)
    box = BlackBox(model, access="score", input_shape=(2, 8, 8), device="cpu")
    p = box(x)
    assert model.seen == [(512, True), (512, True), (276, True)]  # CPU_MAX_BATCH, channels-last
    assert box.queries == 1300 and box.calls == 1
    model.seen.clear()
    ref = BlackBox(model, access="score", input_shape=(2, 8, 8), device="cpu", channels_last=False, max_batch=4096)
    assert torch.allclose(ref(x), p, atol=1e-6) and model.seen == [(1300, False)]
    with pytest.raises(ValueError, match="max_batch"):
        BlackBox(model, access="score", max_batch=0)


def test_validation_still_refuses_nan_and_range_in_one_pass() -> None:
    box = box_of(Centroids())
    bad = points(5)
    bad[2, 3] = float("nan")
    with pytest.raises(InvalidQueryError, match="1 NaN"):
        box(bad)
    with pytest.raises(InvalidQueryError, match=r"spans \[0.*1\.5"):
        box(torch.cat([points(3), torch.full((1, 6), 1.5)]))
    assert box.queries == 0 and box.calls == 0


def test_a_compiled_teacher_answers_through_compile_and_falls_back_with_a_warning(
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[int] = []

    def fake_compile(model: nn.Module) -> object:
        def compiled(x: torch.Tensor) -> torch.Tensor:
            calls.append(x.shape[0])
            if len(calls) > 1:
                raise RuntimeError("no C++ compiler")
            return model(x)
        return compiled

    monkeypatch.setattr(torch, "compile", fake_compile)
    model, x = Centroids(), points(50, 3)
    exact = BlackBox(model, access="decision", input_shape=(6,))(x)
    box = BlackBox(model, access="decision", input_shape=(6,), compile_teacher=True)
    assert box.compiled and torch.equal(box(x), exact) and calls == [50]
    with pytest.warns(RuntimeWarning, match="answers without it"):
        assert torch.equal(box(x), exact)  # the compiled call failed: the same answers, eagerly
    assert torch.equal(box(x), exact) and calls == [50, 50]  # and it stays eager
    assert not BlackBox(model, access="white", compile_teacher=True).compiled  # gradients stay eager


def test_only_full_size_paper_runs_of_the_boundary_methods_compile_their_teacher() -> None:
    from labkit.methods.base import get_method
    from labkit.studies.runner import compiles_teacher

    cpu = torch.device("cpu")
    for name in ("db3kd", "zsdb3kd"):
        assert compiles_teacher(get_method(name), "paper", cpu)
        assert not compiles_teacher(get_method(name), "laptop", cpu)  # under a million images: never pays back
        assert not compiles_teacher(get_method(name), "paper", cpu, {"scale": "tiny"})
        assert not compiles_teacher(get_method(name), "paper", torch.device("cuda"))
    assert not any(compiles_teacher(get_method(n), "paper", cpu) for n in ("kd", "zskd", "mekd", "ideal", "fsbbt"))
