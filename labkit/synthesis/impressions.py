"""Data Impressions (ZSKD's synthesis): Dirichlet targets from the teacher's class similarity, crafted by Adam on
the pixels through a white box.

* :func:`class_similarity` (:func:`final_linear`, :func:`teacher_class_similarity`): ``C(i, j) = cos(w_i, w_j)`` of
  the final layer's weight rows, each row min-max normalised to [0, 1].
* :func:`dirichlet_targets` (:func:`impression_plan`, :func:`dirichlet_concentration`, :func:`sample_dirichlet`):
  a target ``y ~ Dir(β·C_k)`` for every impression of class ``k``.
* :class:`DataImpressionSynthesizer`: from U[0, 1] noise, Adam on the pixels minimises
  ``CE(y, softmax(T(x)/τ))`` (:func:`impression_loss`); its settings are an :class:`ImpressionSettings`.
* :func:`relabelled_copies`: dark-border + blur copies of impressions, each labelled by the teacher at τ.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from labkit.core.blackbox import BlackBox
from labkit.core.errors import AccessDenied, UnknownNameError
from labkit.core.train import adam
from labkit.synthesis.augment import border_blur_copies
from labkit.synthesis.base import Snapshot, SynthesisResult, Synthesizer

#: The smallest Dirichlet concentration used: min-max normalisation maps each row's least
#: similar class to exactly 0, and a Dirichlet needs every concentration > 0.
CONCENTRATION_FLOOR = 1e-3
#: where β enters the Dirichlet concentration (see :func:`dirichlet_concentration`)
BETA_MODES = ("paper", "authors")
#: how pixels stay in [0, 1]: clamp after each step (the lab's), optimise z with x = sigmoid(z), or min-max rescale
#: each group of impressions after each step (the authors' code: a batch of 100 by its global minimum and maximum)
PARAMETRISATIONS = ("clamp", "sigmoid", "minmax")
COPY_PHASE = "relabel copies"  # the phase of the copies' labelling queries


@dataclass(frozen=True)
class ImpressionSettings:
    """How :class:`DataImpressionSynthesizer` crafts (the paper's values by default)."""

    iterations: int = 1500  # Adam steps per impression
    lr: float = 0.01  # Adam learning rate on the pixels
    batch_size: int = 4096  # impressions crafted at once
    tau: float = 20.0  # temperature of the crafting loss and of the teacher's labels
    betas: tuple[float, ...] = (1.0, 0.1)  # Dirichlet scales, an equal share of impressions each
    parametrisation: str = "clamp"  # one of PARAMETRISATIONS
    snapshots: int = 12  # snapshots of the optimisation kept for the evolution plot
    beta_mode: str = "paper"  # where β enters the concentration (see dirichlet_concentration)
    warm_start: bool = False  # chains (the authors' code): each link continues the last one, Adam's state kept
    chain_batch: int = 100  # impressions per link of a chain, and per min-max group (the authors' batch)

    def __post_init__(self) -> None:
        if self.parametrisation not in PARAMETRISATIONS:
            raise ValueError(f"parametrisation must be one of {', '.join(PARAMETRISATIONS)}; "
                             f"got {self.parametrisation!r}")
        if self.chain_batch < 1:
            raise ValueError(f"chain_batch must be >= 1 impression per link, got {self.chain_batch}")
        if self.beta_mode not in BETA_MODES:
            raise UnknownNameError("ZSKD beta_mode", self.beta_mode, BETA_MODES)


def require_white_box(box: BlackBox | None) -> BlackBox:
    """Return ``box`` if it is a white box; otherwise raise :class:`AccessDenied` saying why."""
    if box is None or box.access != "white":
        got = "no teacher at all" if box is None else f"a {box.access!r} box"
        raise AccessDenied(
            f"ZSKD (Data Impressions) needs a white-box teacher: it reads the final layer's weights and "
            f"back-propagates through the teacher to the input pixels. It was given {got}. Build the box with "
            "BlackBox(model, access='white'), or pick a black-box method (zsdb3kd, mekd, fsbbt) instead."
        )
    return box


# --------------------------------------------------------------------------- class similarity
def final_linear(module: nn.Module, num_classes: int | None = None) -> nn.Linear:
    """The teacher's classification layer: the last ``nn.Linear`` (with ``num_classes`` outputs, if given)."""
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if num_classes is not None:
        linears = [m for m in linears if m.out_features == num_classes]
    if not linears:
        want = f" with {num_classes} outputs" if num_classes is not None else ""
        raise ValueError(f"No nn.Linear layer{want} found in the teacher; ZSKD reads class similarity from the "
                         "weights of the final fully connected layer.")
    return linears[-1]


def class_similarity(weight: torch.Tensor) -> torch.Tensor:
    """C×C class similarity from final-layer weights (C×D): cosine similarity, each row min-max normalised.

    Row ``k`` becomes ``(cos_k − min cos_k) / (max cos_k − min cos_k)``: the class itself gets 1
    (its own cosine is the row maximum) and the least similar class 0.
    """
    w = F.normalize(weight.detach().float(), dim=1)
    return minmax_rows(w @ w.T)


def minmax_rows(m: torch.Tensor) -> torch.Tensor:
    """Each row of ``m`` min-max normalised to [0, 1] (a constant row becomes 0)."""
    lo = m.min(dim=1, keepdim=True).values
    hi = m.max(dim=1, keepdim=True).values
    return (m - lo) / (hi - lo).clamp_min(1e-12)


def teacher_class_similarity(box: BlackBox) -> torch.Tensor:
    """:func:`class_similarity` of a white box's final layer (no queries: it reads weights only)."""
    layer = final_linear(require_white_box(box).module, box.num_classes)
    return class_similarity(layer.weight)


# --------------------------------------------------------------------------- Dirichlet targets
def dirichlet_concentration(similarity: torch.Tensor, classes: torch.Tensor, betas: torch.Tensor,
                            beta_mode: str = "paper") -> torch.Tensor:
    """Concentration per impression from the row-normalised C×C ``similarity``, ``classes`` (N,) and β (N,).

    ``beta_mode="paper"`` (the paper's description): ``β·C_k``, β applied *after* the row normalisation.
    ``"authors"`` (the authors' public code): β scales the row first and the min-max normalisation follows;
    a min-max normalisation cancels any positive scale, so every β gives ``C_k`` (effectively β = 1).
    Entries are floored at :data:`CONCENTRATION_FLOOR` (times β in paper mode): a Dirichlet needs them > 0.
    """
    if beta_mode not in BETA_MODES:
        raise UnknownNameError("ZSKD beta_mode", beta_mode, BETA_MODES)
    rows = similarity.to(classes.device).float()[classes]
    b = betas.to(rows).view(-1, 1)
    if beta_mode == "authors":  # scale, then normalise: the scale cancels
        return minmax_rows(b * rows).clamp_min(CONCENTRATION_FLOOR)
    return b * rows.clamp_min(CONCENTRATION_FLOOR)


def sample_dirichlet(concentration: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """One Dirichlet sample per row of ``concentration`` (N×C), seeded, in float64 then float32.

    Float64 matters: with β = 0.1 a float32 gamma draw underflows to 0 often enough to give
    all-zero rows; such a row (should any remain) falls back to its largest concentration.
    """
    alpha = concentration.detach().double().cpu()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        g = torch._standard_gamma(alpha)
    total = g.sum(1, keepdim=True)
    y = g / total.clamp_min(1e-300)
    bad = ~(total.squeeze(1) > 0) | ~torch.isfinite(y).all(1)
    if bool(bad.any()):
        y[bad] = F.one_hot(alpha[bad].argmax(1), alpha.shape[1]).double()
    return y.float().to(concentration.device)


def impression_plan(n: int, num_classes: int, betas: tuple[float, ...] = (1.0, 0.1),
                    device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Classes and β for ``n`` impressions: balanced over classes, and over β within each class.

    Impression ``i`` has class ``i mod C`` and β ``betas[(i // C) mod len(betas)]``, so any
    prefix of the plan is (nearly) balanced too.
    """
    idx = torch.arange(n, device=device)
    classes = idx % num_classes
    beta_values = torch.tensor(betas, dtype=torch.float32, device=device)
    return classes, beta_values[(idx // num_classes) % len(betas)]


def dirichlet_targets(similarity: torch.Tensor, classes: torch.Tensor, betas: torch.Tensor,
                      seed: int = 0, beta_mode: str = "paper") -> torch.Tensor:
    """Sampled targets ``y ~ Dir(concentration)`` for every impression (N×C, rows sum to 1)."""
    return sample_dirichlet(dirichlet_concentration(similarity, classes, betas, beta_mode), seed)


def impression_loss(logits: torch.Tensor, targets: torch.Tensor, tau: float) -> torch.Tensor:
    """Per-impression crafting loss ``CE(y, softmax(T(x)/τ)) = −Σ_c y_c log softmax(T(x)/τ)_c`` (shape N)."""
    return -(targets * F.log_softmax(logits.float() / tau, dim=1)).sum(1)


# --------------------------------------------------------------------------- crafting
class DataImpressionSynthesizer(Synthesizer):
    """Crafts Data Impressions through a white box (see the module doc for the recipe), as ``settings`` say.

    ``synthesize(n)`` returns a :class:`~labkit.synthesis.base.SynthesisResult` whose ``images``
    are the impressions (N×C×H×W in [0, 1]) and whose ``targets`` are the teacher's soft
    labels at τ on them (one counted labelling pass, phase ``"label impressions"``).
    ``extras`` holds ``classes``, ``betas``, ``dirichlet_targets`` (the sampled y),
    ``loss_history`` (mean crafting loss before each step and after the last) and
    ``final_loss`` (per impression).
    """

    def __init__(self, box: BlackBox, settings: ImpressionSettings | None = None, *,
                 similarity: torch.Tensor | None = None, seed: int = 0) -> None:
        """``similarity``: the row-normalised class similarity (default: read from the box's final layer)."""
        super().__init__(require_white_box(box), seed)
        if box.input_shape is None or box.num_classes is None:
            raise ValueError("the box must know its input_shape and num_classes to craft impressions "
                             "(BlackBox(model, access='white', input_shape=..., num_classes=...))")
        self.settings = settings = settings if settings is not None else ImpressionSettings()
        self.iterations, self.lr = int(settings.iterations), float(settings.lr)
        self.batch_size, self.tau = int(settings.batch_size), float(settings.tau)
        self.input_shape, self.num_classes = tuple(box.input_shape), int(box.num_classes)
        self.betas, self.parametrisation = tuple(settings.betas), settings.parametrisation
        self.n_snapshots, self.beta_mode = int(settings.snapshots), settings.beta_mode
        self.warm_start, self.chain_batch = bool(settings.warm_start), int(settings.chain_batch)
        self.group_size = self.chain_batch  # images per min-max group (a chain's link size when chaining)
        self.similarity = (similarity if similarity is not None else teacher_class_similarity(box)).to(box.device)
        self._made = 0  # impressions made so far (offsets the plan and the seeds across calls)

    def snapshot_steps(self) -> list[int]:
        """The steps at which snapshots are taken: 0 (noise), evenly spaced ones, and the last."""
        k = max(2, self.n_snapshots)
        return sorted({round(i * self.iterations / (k - 1)) for i in range(k)})

    def _pixels(self, param: torch.Tensor) -> torch.Tensor:
        """The images a parameter tensor stands for (itself when clamping or rescaling, its sigmoid otherwise)."""
        return torch.sigmoid(param) if self.parametrisation == "sigmoid" else param

    def _initial_param(self, x0: torch.Tensor) -> torch.Tensor:
        return (torch.logit(x0.clamp(1e-3, 1 - 1e-3)) if self.parametrisation == "sigmoid" else x0.clone())

    def _keep_in_range(self, param: torch.Tensor) -> None:
        """After each Adam step: clamp to [0, 1], or min-max rescale each group (the authors' code)."""
        with torch.no_grad():
            if self.parametrisation == "clamp":
                param.clamp_(0.0, 1.0)
            elif self.parametrisation == "minmax":
                param.copy_(minmax_groups(param, self.group_size))

    def _craft(self, param: torch.Tensor, opt: torch.optim.Optimizer, y: torch.Tensor, loss_sum: torch.Tensor,
               first_step: int, bar: tqdm, snap: Callable[[int, torch.Tensor], None] | None) -> None:
        """``iterations`` Adam steps on ``param`` toward the targets ``y``; the per-step loss sums go to
        ``loss_sum[first_step:]``, and ``snap(step, images)`` is called at the snapshot steps."""
        box = self.box
        with box.phase("craft impressions"):
            for step in range(self.iterations):
                x = self._pixels(param)
                if snap is not None:
                    snap(step, x)
                loss = impression_loss(box(x), y, self.tau)
                loss_sum[first_step + step] += loss.detach().sum()
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                opt.step()
                self._keep_in_range(param)
                bar.update(1)

    def _synthesize(self, n: int, progress: bool) -> SynthesisResult:
        dev, c = self.box.device, self.num_classes
        chains = self.chain_layout(n)
        total = n if chains is None else chains[0] * chains[1] * chains[2]  # chains pad to whole links
        self.group_size = self.chain_batch if chains is None else chains[1]
        plan_classes, plan_betas = impression_plan(self._made + total, c, self.betas, device=dev)
        classes, betas = plan_classes[self._made:], plan_betas[self._made:]
        targets = dirichlet_targets(self.similarity, classes, betas, seed=self.seed * 1_000_003 + self._made,
                                    beta_mode=self.beta_mode)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self._made + 1)
        images = torch.rand((total, *self.input_shape), generator=gen).to(dev)
        steps = self.iterations * (1 if chains is None else chains[2])
        loss_sum = torch.zeros(steps, device=dev)
        snap_steps, snap_count = set(self.snapshot_steps()), min(total, c)  # one impression per class
        snapshots: list[Snapshot] = []
        groups: list[tuple[torch.Tensor, ...]]
        if chains is None:  # independent impressions, craft_batch at a time
            groups = [(torch.arange(a, min(total, a + self.batch_size), device=dev),) for a in
                      range(0, total, self.batch_size)]
        else:  # chain k holds the impressions of one (class, β) pair in plan order, link after link
            groups = self._chain_groups(classes, betas, chains)

        def snap(step: int, x: torch.Tensor) -> None:
            if step in snap_steps:
                snapshots.append(Snapshot(step, x[:snap_count].detach().cpu().clone(), classes[:snap_count].cpu()))

        bar = tqdm(total=sum(len(g) for g in groups) * self.iterations, desc="crafting impressions",
                   disable=not progress, leave=False)
        for g_no, links in enumerate(groups):
            param = self._initial_param(images[links[0]]).requires_grad_(True)
            opt = adam([param], lr=self.lr)  # one optimiser per chain: its state carries over the links
            for link_no, idx in enumerate(links):
                if link_no:  # the next link starts from the previous link's impressions
                    with torch.no_grad():
                        images[links[link_no - 1]] = self._pixels(param).detach()
                first = 0 if chains is None else link_no * self.iterations
                keep = g_no == 0 and link_no == 0 and snap_count > 0 and chains is None
                self._craft(param, opt, targets[idx], loss_sum, first, bar, snap if keep else None)
            with torch.no_grad():
                images[links[-1]] = self._pixels(param).detach()
        bar.close()
        # chains crafted whole links: the first n impressions of the plan are kept, labelled and returned
        images, targets, classes, betas = images[:n], targets[:n], classes[:n], betas[:n]
        with torch.no_grad(), self.box.phase("label impressions"):
            logits = torch.cat([self.box(images[a:a + self.batch_size]).float() for a in range(0, n, self.batch_size)])
        final_loss = impression_loss(logits, targets, self.tau)
        per_step = float(total if chains is None else chains[0] * chains[1])  # impressions crafted at each step
        history = torch.cat([loss_sum[:steps] / per_step, final_loss.mean().view(1)])
        snap_count = min(n, c)
        snapshots.append(Snapshot(steps, images[:snap_count].cpu().clone(), classes[:snap_count].cpu()))
        self._made += total
        soft = torch.softmax(logits / self.tau, dim=1)
        extras: dict[str, object] = {
            "classes": classes, "betas": betas, "dirichlet_targets": targets,
            "loss_history": history.cpu(), "final_loss": final_loss, "tau": self.tau,
            "convergence": crafting_convergence(images, logits, targets, classes, betas, self.tau),
            "crafted": total, "chains": None if chains is None else list(chains),
        }
        return SynthesisResult(images, soft, snapshots, extras)

    def chain_layout(self, n: int) -> tuple[int, int, int] | None:
        """``(chains, impressions per link, links)`` when crafting in warm-started chains, else ``None``.

        One chain per (class, β) pair, as the authors' code crafts one class and β after another; each link is
        ``chain_batch`` impressions (fewer when ``n`` is small), and the chains are padded to whole links."""
        if not self.warm_start:
            return None
        chains = self.num_classes * len(self.betas)
        per_link = max(1, min(self.chain_batch, math.ceil(n / chains)))
        return chains, per_link, math.ceil(n / (chains * per_link))

    def _chain_groups(self, classes: torch.Tensor, betas: torch.Tensor, layout: tuple[int, int, int]
                      ) -> list[tuple[torch.Tensor, ...]]:
        """Index tensors per crafting group: chains side by side (up to ``craft_batch`` impressions per link), and
        per group one index tensor per link."""
        chains, per_link, links = layout
        beta_values = torch.tensor(self.betas, device=betas.device)
        beta_index = (betas.view(-1, 1) == beta_values.view(1, -1)).float().argmax(1)
        chain_of = classes * len(self.betas) + beta_index  # plan order within each chain is kept
        members = [torch.nonzero(chain_of == k).squeeze(1) for k in range(chains)]
        side_by_side = max(1, self.batch_size // per_link)
        groups = []
        for a in range(0, chains, side_by_side):
            ks = range(a, min(chains, a + side_by_side))
            groups.append(tuple(torch.cat([members[k][link * per_link:(link + 1) * per_link] for k in ks])
                                for link in range(links)))
        return groups


def minmax_groups(x: torch.Tensor, group_size: int) -> torch.Tensor:
    """Each run of ``group_size`` consecutive images rescaled to [0, 1] by its own minimum and maximum over all
    its pixels (the authors' per-step rescaling of a crafting batch; a constant group becomes 0)."""
    flat = x.detach().reshape(x.shape[0], -1)
    gid = torch.arange(x.shape[0], device=x.device) // max(1, group_size)
    k = int(gid[-1]) + 1 if x.shape[0] else 0
    lo = torch.full((k,), math.inf, device=x.device).scatter_reduce(0, gid, flat.amin(1), "amin")
    hi = torch.full((k,), -math.inf, device=x.device).scatter_reduce(0, gid, flat.amax(1), "amax")
    out = (flat - lo[gid].unsqueeze(1)) / (hi - lo)[gid].clamp_min(1e-12).unsqueeze(1)
    return out.reshape(x.shape)


def _gap(loss: float, floor: float) -> float | None:
    """The crafting loss's distance above its floor, as a fraction of the floor (None for a zero floor)."""
    return round((loss - floor) / floor, 4) if floor > 0 else None


def crafting_convergence(images: torch.Tensor, logits: torch.Tensor, targets: torch.Tensor, classes: torch.Tensor,
                         betas: torch.Tensor, tau: float) -> dict[str, object]:
    """How far the crafting got: the mean final loss against its floor (the targets' mean entropy, the lowest a
    cross-entropy to them can reach), the share of impressions whose teacher argmax is the target's argmax, the
    share of saturated pixels (within 1e-3 of 0 or 1), and per β the gap to the floor and how often the Dirichlet
    target's own argmax is the class it was drawn for."""
    losses = impression_loss(logits, targets, tau)
    floors = -(targets * targets.clamp_min(1e-30).log()).sum(1)
    loss, floor = float(losses.mean()), float(floors.mean())
    per_beta = {f"{float(b):g}": round(float((targets[betas == b].argmax(1) == classes[betas == b]).float().mean()),
                                       4) for b in torch.unique(betas)}
    gap_by_beta = {f"{float(b):g}": _gap(float(losses[betas == b].mean()), float(floors[betas == b].mean()))
                   for b in torch.unique(betas)}
    return {"final_loss": round(loss, 4), "loss_floor": round(floor, 4), "gap_to_floor": _gap(loss, floor),
            "gap_to_floor_by_beta": gap_by_beta,
            "teacher_argmax_matches_target": round(float((logits.argmax(1) == targets.argmax(1)).float().mean()), 4),
            "saturated_pixels": round(float(((images <= 1e-3) | (images >= 1 - 1e-3)).float().mean()), 4),
            "target_argmax_is_class_by_beta": per_beta}


# --------------------------------------------------------------------------- relabelled copies
def relabelled_copies(box: BlackBox, images: torch.Tensor, copies: int, tau: float, *, seed: int = 0,
                      box_fraction: tuple[float, float] = (0.3, 1.0), blur: tuple[float, float] = (0.5, 1.5),
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """``copies`` :func:`~labkit.synthesis.augment.border_blur_copies` of every impression, each labelled by the
    teacher's softmax at ``tau`` (one counted query per copy, phase ``"relabel copies"``). Returns ``(images,
    soft_labels)``."""
    c = int(box.num_classes or 0)
    if copies <= 0 or images.shape[0] == 0:
        return images[:0], torch.empty(0, c, device=images.device)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + 17)
    xs = torch.cat([border_blur_copies(images, gen, box_fraction, blur) for _ in range(copies)])
    with torch.no_grad(), box.phase(COPY_PHASE):
        soft = torch.softmax(box(xs).float() / tau, dim=1)  # one call; the box chunks by memory
    return xs, soft.to(xs.device)
