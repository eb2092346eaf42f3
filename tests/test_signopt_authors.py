"""The authors' Sign-OPT (their ``untargeted_mbd.py``), pinned on a linear toy box whose nearest boundary is known;
each test has a control: the lab's earlier rule on the same rays, which fails the same check."""
from __future__ import annotations

import math

import pytest
import torch

from labkit.synthesis import boundary
from labkit.synthesis.boundary import AUTHORS_SIGNOPT, SignOptRule

DIM, OFFSET, BETA = 16, 0.3, 1e-3
LAB = SignOptRule()


class LinearBox:
    """Class 1 where ``w·(x − 0.5) > OFFSET``, else 0; counts every image it answers."""

    def __init__(self) -> None:
        w = torch.randn(DIM, generator=torch.Generator().manual_seed(0))
        self.w = w / w.norm()
        self.queries = 0

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        self.queries += x.shape[0]
        return ((x.reshape(x.shape[0], -1) - 0.5) @ self.w > OFFSET).long()


def rays(box: LinearBox, n: int = 6, angle_deg: float = 60.0) -> tuple[torch.Tensor, ...]:
    """Samples near the cube's centre (class 0), directions ``angle_deg`` off the boundary normal, each with its exact
    boundary distance along that direction; and the true nearest distance of each sample."""
    gen = torch.Generator().manual_seed(1)
    x = (0.5 + 0.02 * torch.randn(n, DIM, generator=gen)).view(n, 1, 4, 4)
    nearest = OFFSET - (x.reshape(n, -1) - 0.5) @ box.w
    perp = torch.randn(n, DIM, generator=gen)
    perp = perp - (perp @ box.w)[:, None] * box.w
    perp = perp / perp.norm(dim=1, keepdim=True)
    c = math.cos(math.radians(angle_deg))
    theta = c * box.w + math.sqrt(1 - c * c) * perp
    return x, theta.view(n, 1, 4, 4), nearest / c, nearest


def run(rule: SignOptRule, queries: int = 3000, iterations: int | None = None, angle_deg: float = 60.0,
        n_probes: int = 200) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, LinearBox]:
    box = LinearBox()
    x, theta, start, nearest = rays(box, angle_deg=angle_deg)
    y = box(x)
    box.queries = 0
    g, th, _, spent = boundary.sign_opt(box, x, theta, start, y, None, queries=queries, n_probes=n_probes, beta=BETA,
                                        alpha=0.2, rule=rule, max_iterations=iterations, seed=3)
    along = nearest / (th.reshape(len(g), -1) @ box.w)  # the exact boundary distance along the returned direction
    return g, along, nearest, spent, box


def test_authors_candidates_are_measured_to_beta_over_500() -> None:
    g, along, _, _, _ = run(SignOptRule(tol_beta_divisor=500.0), iterations=3)
    assert bool((g >= along - 1e-9).all()) and float((g - along).max()) <= BETA / 500  # the hit side, within β/500
    g_lab, along_lab, _, _, _ = run(LAB, iterations=3)  # control: relative 2⁻⁷ bisection, errors up to 0.8 % of g
    assert float((g_lab - along_lab).max()) > BETA / 500


def test_the_line_search_travels_to_the_boundary_normal_in_one_iteration() -> None:
    g, _, nearest, spent, _ = run(SignOptRule(line_search=True, tol_beta_divisor=500.0), iterations=1)
    assert float((g / nearest).max()) < 1.2  # from 60° off (ratio 2) to within 20 % of the nearest distance
    assert bool((spent > 200).all())  # the probe round, then several line-search tries
    g_lab, _, nearest_lab, _, _ = run(SignOptRule(tol_beta_divisor=500.0), iterations=1)  # control: one 0.2 step
    assert float((g_lab / nearest_lab).min()) > 1.4


def test_the_authors_rule_converges_where_the_labs_stalls() -> None:
    g, _, nearest, spent, box = run(AUTHORS_SIGNOPT, queries=3000)
    assert float((g / nearest - 1).abs().max()) < 1e-4 and bool((spent <= 3000).all())
    assert box.queries == int(spent.sum())  # every image counted, no ray over its budget
    g_lab, _, nearest_lab, _, _ = run(LAB, queries=3000)  # control: the lab's rule stalls 20 %+ away
    assert float((g_lab / nearest_lab).min()) > 1.2


def test_a_stalled_step_resets_alpha_and_shrinks_beta_instead_of_stopping() -> None:
    # start on the boundary normal: no direction is nearer, every try fails and α underflows
    g, _, nearest, spent, _ = run(SignOptRule(stall_reset=True), queries=20_000, angle_deg=0.0, n_probes=20)
    g_lab, _, _, spent_lab, _ = run(LAB, queries=20_000, angle_deg=0.0, n_probes=20)
    # the lab's rule stops at its first stall (6 iterations); the reset runs on at β = 1e-4 … 1e-8, stalling 5 times
    # more (7 iterations each, from α = 1), and then stops by itself
    assert bool((spent >= 5 * spent_lab).all()) and bool((spent < 20_000).all())  # ends by itself at β < 1e-8
    assert bool((g <= nearest * (1 + 2 ** -7)).all()) and bool((g_lab <= nearest * (1 + 2 ** -7)).all())


def test_the_paper_profile_probes_200_times_per_estimate() -> None:
    from labkit.methods.zsdb3kd import ZSDB3KDConfig

    cfg = ZSDB3KDConfig.for_profile("paper")
    assert cfg.n_probes == 200 and cfg.variant == "paper"
    assert (cfg.signopt_line_search, cfg.signopt_stall_reset, cfg.signopt_tol_beta_divisor, cfg.max_halvings,
            cfg.warm_start) == (True, True, 500.0, -1, False)
    assert cfg.pseudo_sample_settings().signopt_rule() == AUTHORS_SIGNOPT
    lab = ZSDB3KDConfig.for_profile("laptop")  # the lab variant keeps the lab's rule
    assert lab.pseudo_sample_settings().signopt_rule() == LAB
    _, _, _, spent, _ = run(AUTHORS_SIGNOPT, iterations=1, n_probes=200)
    assert bool((spent >= 200).all())


def test_bad_sign_opt_settings_are_refused() -> None:
    from labkit.core.errors import ConfigError
    from labkit.methods.zsdb3kd import ZSDB3KDConfig

    with pytest.raises(ConfigError, match="max_halvings"):
        ZSDB3KDConfig.for_profile("smoke", max_halvings=-2).check()


def test_db3kds_targeted_search_takes_the_same_rule() -> None:
    from labkit.methods.db3kd import DB3KDConfig

    box = LinearBox()
    x, _, _, nearest = rays(box)
    gen = torch.Generator().manual_seed(2)
    pool = (0.5 + 0.6 * box.w + 0.05 * torch.randn(40, DIM, generator=gen)).view(40, 1, 4, 4)  # class-1 images
    y, pool_y = box(x), box(pool)
    assert bool((pool_y == 1).all())
    kw = dict(n_directions=4, signopt_queries_per_pair=2000, n_probes=50, seed=0)
    authors = boundary.minimal_boundary_distance(box, x, y, pool, pool_y, 2, rule=AUTHORS_SIGNOPT, **kw)
    lab = boundary.minimal_boundary_distance(box, x, y, pool, pool_y, 2, **kw)  # control
    assert float((authors.distance[:, 1] / nearest - 1).max()) < 1e-3 < float((lab.distance[:, 1] / nearest - 1).max())
    assert bool((authors.distance[:, 1] <= authors.start_distance[:, 1]).all())
    cfg = DB3KDConfig.for_profile("paper")
    assert cfg.n_probes == 200 and (cfg.signopt_line_search, cfg.signopt_stall_reset, cfg.signopt_tol_beta_divisor) \
        == (True, True, 500.0)
