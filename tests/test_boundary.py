"""labkit.synthesis.boundary: bisection, SD/BD/MBD and the untargeted search, on analytic and tiny teachers."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from labkit import BlackBox
from labkit.core import metrics
from labkit.core.errors import InvalidQueryError
from labkit.synthesis import boundary


class CountingLinear(nn.Module):
    """A linear teacher on 2-D points (analytic boundaries) that counts the rows it sees."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        super().__init__()
        self.lin = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.lin.weight.copy_(weight)
            self.lin.bias.copy_(bias)
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += x.shape[0]
        return self.lin(x.reshape(x.shape[0], -1))


def linear_teacher() -> CountingLinear:
    # three classes meeting around (0.5, 0.5): directions at 0°, 120°, 240°
    angles = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3])
    w = torch.stack([torch.cos(angles), torch.sin(angles)], 1) * 4.0
    b = -(w @ torch.tensor([0.5, 0.5]))
    return CountingLinear(w, b)


def true_boundary(model: CountingLinear, x0: torch.Tensor, theta: torch.Tensor, target: int | None,
                  hi: float = 0.4) -> torch.Tensor:
    """Smallest λ where the label along x0 + λθ changes (untargeted) or becomes ``target``, analytically."""
    w, b = model.lin.weight.detach().double(), model.lin.bias.detach().double()
    x0, theta = x0.double(), theta.double()
    l0 = x0 @ w.T + b                   # (N, C)
    slope = torch.einsum("ndp,cp->ndc", theta, w)  # (N, D, C)
    y0 = l0.argmax(1)
    n, d, c = slope.shape
    lams = torch.linspace(0, hi, 40001, dtype=torch.float64)
    logits = l0[:, None, None, :] + lams[None, None, :, None] * slope[:, :, None, :]  # (N, D, L, C)
    lab = logits.argmax(-1)
    hit = lab != y0[:, None, None] if target is None else lab == target
    first = torch.where(hit.any(-1), hit.float().argmax(-1), torch.full((n, d), -1))
    return torch.where(first >= 0, lams[first.clamp_min(0)], torch.full((n, d), math.inf, dtype=torch.float64))


def make_box(model: nn.Module, dims: int = 2, classes: int = 3) -> BlackBox:
    return BlackBox(model, access="decision", input_shape=(dims,), num_classes=classes)


def test_bisection_lands_within_tolerance_and_query_bound() -> None:
    model = linear_teacher()
    box = make_box(model)
    g = torch.Generator().manual_seed(0)
    x0 = 0.5 + (torch.rand(16, 2, generator=g) - 0.5) * 0.2      # near the triple point, inside [0.4, 0.6]²
    dirs = torch.randn(16, 12, 2, generator=g)
    dirs = dirs / dirs.norm(dim=-1, keepdim=True)
    y0 = box(x0)
    box.reset_counter()
    model.seen = 0
    tol, hi = 1e-4, 0.35
    res = boundary.bisect_boundary(box, x0, dirs, y0, None, 0.0, hi, tol)
    truth = true_boundary(model, x0, dirs, None, hi)
    found = torch.isfinite(truth)
    assert found.float().mean() > 0.5
    assert torch.equal(res.found, found)                      # finds exactly the rays that change label
    err = res.distance[found] - truth[found]
    assert (err >= -1e-5).all() and (err <= tol + 1e-5).all()  # hit side, within tol (grid step < 1e-5)
    bound = math.ceil(math.log2(hi / tol)) + 2
    assert int(res.queries.max()) <= bound
    assert boundary.bisection_query_bound(hi, tol) <= bound
    # exact counts: per-ray counts, the box and the model agree
    assert res.total_queries == box.queries == model.seen
    # the label across the boundary is a different class
    assert (res.label[found] != y0.unsqueeze(1).expand_as(res.label)[found]).all()


def test_targeted_bisection_and_known_far_end_costs_no_check() -> None:
    model = linear_teacher()
    box = make_box(model)
    x0 = torch.tensor([[0.45, 0.5], [0.55, 0.55]])
    y0 = box(x0)
    targets = (y0 + 1) % 3
    # aim straight at a point deep inside the target class
    w = model.lin.weight.detach()
    far = 0.5 + 0.35 * w[targets] / w[targets].norm(dim=1, keepdim=True)
    assert torch.equal(box(far), targets)
    dirs = (far - x0).unsqueeze(1)
    radius = dirs.norm(dim=-1)
    box.reset_counter()
    tol = 1e-3
    res = boundary.bisect_boundary(box, x0, dirs, y0, targets, 0.0, radius, tol, hi_known=True)
    assert int(res.queries.max()) <= math.ceil(math.log2(float(radius.max()) / tol))
    truth = true_boundary(model, x0, dirs / radius.unsqueeze(-1), targets.unsqueeze(1).unsqueeze(2))
    assert torch.isfinite(truth).all()
    assert ((res.distance - truth).abs() <= tol + 1e-4).all()
    assert torch.equal(res.label.squeeze(1), targets)
    assert res.total_queries == box.queries


def test_bad_inputs_give_clear_errors() -> None:
    model = linear_teacher()
    score_box = BlackBox(model, access="score", input_shape=(2,), num_classes=3)
    x0 = torch.full((2, 2), 0.5)
    with pytest.raises(InvalidQueryError, match="decision box"):
        boundary.bisect_boundary(score_box, x0, torch.ones(2, 1, 2), torch.zeros(2, dtype=torch.long), None, 0, 0.3)
    with pytest.raises(ValueError, match="target must be"):
        boundary.bisect_boundary(make_box(model), x0, torch.ones(2, 3, 2), torch.zeros(2, dtype=torch.long),
                                 torch.zeros(5, dtype=torch.long), 0, 0.3)


class CountingMLP(nn.Module):
    """A random nonlinear teacher with curved regions (seeded), counting rows."""

    def __init__(self, dims: int, classes: int) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.net = nn.Sequential(nn.Linear(dims, 32), nn.Tanh(), nn.Linear(32, classes))
        with torch.no_grad():
            self.net[0].weight.mul_(6.0)
            self.net[0].bias.copy_(-(self.net[0].weight @ torch.full((dims,), 0.5)))
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += x.shape[0]
        return self.net(x.reshape(x.shape[0], -1))


@pytest.fixture(scope="module")
def mlp_setup() -> tuple[CountingMLP, BlackBox, torch.Tensor, torch.Tensor]:
    model = CountingMLP(8, 4)
    box = make_box(model, 8, 4)
    pool = torch.rand(600, 8, generator=torch.Generator().manual_seed(1))
    pool_y = box(pool)
    assert len(pool_y.unique()) == 4
    return model, box, pool, pool_y


def test_sample_distance_needs_no_queries(mlp_setup: tuple) -> None:
    model, box, pool, pool_y = mlp_setup
    before = box.queries
    sd = boundary.sample_distance(pool[:20], pool, pool_y, 4, n_samples=5)
    assert box.queries == before and sd.total_queries == 0
    assert sd.distance.shape == (20, 4) and (sd.distance > 0).all()
    # SD with every pool sample = the exact nearest distance per class
    full = boundary.sample_distance(pool[:20], pool, pool_y, 4, n_samples=600)
    d = torch.cdist(pool[:20], pool)
    d[d <= 1e-6] = math.inf
    for c in range(4):
        assert torch.allclose(full.distance[:, c].float(), d[:, pool_y == c].min(1).values, atol=1e-5)
    assert (full.distance <= sd.distance + 1e-9).all()


def test_bd_mbd_counts_and_ordering(mlp_setup: tuple) -> None:
    model, box, pool, pool_y = mlp_setup
    x, y = pool[:24], pool_y[:24]
    box.reset_counter()
    model.seen = 0
    bd = boundary.boundary_distance(box, x, y, pool, pool_y, 4, n_directions=6, keep_directions=True)
    assert bd.total_queries == box.queries == model.seen
    own = torch.nn.functional.one_hot(y, 4).bool()
    assert torch.isinf(bd.distance[own]).all() and torch.isfinite(bd.distance[~own]).all()
    # a boundary is never farther than the nearest class-t sample (the ray ends there)
    sd = boundary.sample_distance(x, pool, pool_y, 4, n_samples=600)
    assert (bd.distance[~own] <= sd.distance[~own] + 1e-9).all()
    # the boundary points found really are of the target class
    pts = bd.boundary_points(x)
    lab = box(pts[~own])
    assert torch.equal(lab, torch.arange(4).expand(24, 4)[~own])
    # a per-pair budget is respected exactly
    box.reset_counter()
    capped = boundary.boundary_distance(box, x, y, pool, pool_y, 4, n_directions=6, queries_per_pair=5)
    assert capped.total_queries == box.queries and int(capped.queries.max()) <= 3 * 5

    box.reset_counter()
    model.seen = 0
    mbd = boundary.minimal_boundary_distance(box, x, y, pool, pool_y, 4, n_directions=6,
                                             signopt_queries_per_pair=120, n_probes=10)
    assert mbd.total_queries == box.queries == model.seen
    assert int(mbd.queries.max()) <= bd.queries.max() + 3 * 120
    assert torch.equal(mbd.start_distance[~own], bd.distance[~own])
    assert (mbd.distance[~own] <= bd.distance[~own]).all()     # MBD ≤ BD on every sample and class
    assert (mbd.distance[~own] < bd.distance[~own]).float().mean() > 0.3  # and Sign-OPT does shrink many


def test_nearest_boundary_untargeted(mlp_setup: tuple) -> None:
    model, box, pool, pool_y = mlp_setup
    x, y = pool[:30], pool_y[:30]
    box.reset_counter()
    model.seen = 0
    rough = boundary.nearest_boundary(box, x, y, n_directions=8, signopt_queries=0, seed=1)
    assert rough.total_queries == box.queries == model.seen
    box.reset_counter()
    nb = boundary.nearest_boundary(box, x, y, n_directions=8, signopt_queries=150, n_probes=10, seed=1)
    assert nb.total_queries == box.queries
    ok = torch.isfinite(nb.distance)
    assert ok.float().mean() > 0.9
    assert (nb.distance[ok] <= rough.distance[ok]).all()
    assert torch.allclose(nb.direction[ok].norm(dim=1), torch.ones(int(ok.sum())), atol=1e-4)
    across = box((x + nb.distance.unsqueeze(1).float() * nb.direction).clamp(0, 1))
    assert (across[ok] != y[ok]).all() and torch.equal(across[ok], nb.label[ok])
    # never closer than the true nearest boundary: no point inside the ball of radius g·(1−tol) changes
    # along the found direction (checked on a grid)
    lam = torch.linspace(0, 1, 50)[:-1] * nb.distance[ok].unsqueeze(1).float() * (1 - 2 * boundary.DEFAULT_RTOL)
    pts = (x[ok].unsqueeze(1) + lam.unsqueeze(2) * nb.direction[ok].unsqueeze(1)).clamp(0, 1)
    inside = box(pts.reshape(-1, 8)).view(int(ok.sum()), -1)
    assert (inside == y[ok].unsqueeze(1)).float().mean() > 0.99


def test_distance_soft_labels_and_rank_tools() -> None:
    d = torch.tensor([[math.inf, 1.0, 2.0, 4.0], [0.5, math.inf, math.inf, 1.0]])
    y = torch.tensor([0, 1])
    z = boundary.distance_logits(d, y)
    assert torch.allclose(z[0], torch.tensor([1.75, 1.0, 0.5, 0.25], dtype=torch.float64))
    assert torch.allclose(z[1], torch.tensor([2.0, 3.0, 0.0, 1.0], dtype=torch.float64))
    p = boundary.distance_soft_labels(d, y, tau=2.0)
    assert torch.allclose(p.sum(1), torch.ones(2)) and (p.argmax(1) == y).all()
    assert torch.allclose(p, torch.softmax(z / 2.0, 1).float())
    flatter = boundary.distance_soft_labels(d, y, tau=20.0)
    assert (flatter.max(1).values < p.max(1).values).all()
    with pytest.raises(ValueError):
        boundary.distance_soft_labels(d, y, tau=0)
    a = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1], [1.0, 1.0, 2.0, 0.0]])
    b = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 2.0, 0.0]])
    rho = metrics.spearman_per_sample(a, b)
    assert torch.allclose(rho, torch.tensor([1.0, -1.0, 1.0]), atol=1e-6)
    assert metrics.top2_agreement(a, b).tolist() == [True, False, True]


def test_own_class_mass_falls_toward_uniform_as_tau_grows() -> None:
    d = torch.tensor([[math.inf, 0.5, 1.0], [2.0, math.inf, 4.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    own, other = boundary.own_class_mass(d, y, (1.0, 20.0, 1e6))
    p = boundary.distance_soft_labels(d, y, 1.0).double()
    assert own[0] == pytest.approx(float((p[0, 0] + p[1, 1]) / 2))
    assert all(o + 2 * e == pytest.approx(1.0) for o, e in zip(own, other))
    assert own[0] > own[1] > own[2] == pytest.approx(1 / 3, abs=1e-5)  # flat at a huge τ
