"""ZSKD: zero-shot KD with Data Impressions (Nayak et al., ICML 2019), white-box teacher, no data.

**Paper recipe** (METHODS.md §4). (1) Class similarity from the final layer: ``C(i, j) = cos(w_i, w_j)``
of its weight rows, each row min-max normalised to [0, 1] (:func:`class_similarity`, :func:`final_linear`).
(2) An impression of class ``k`` gets a target ``y ~ Dir(β·C_k)``, half with β = 1.0, half with β = 0.1.
(3) From U[0, 1] noise, Adam on the pixels minimises ``CE(y, softmax(T(x)/τ))`` at τ = 20, 1500 steps at
lr 0.01, 48k impressions for Fashion-MNIST (:class:`DataImpressionSynthesizer`). (4) The teacher's softmax
at τ = 20 labels every impression; the student learns them with ``τ²·KL`` only (loss ``"soft-kd"``) at the
same τ. Augmentation is allowed when the teacher relabels the augmented images.

**The lab's differences.**

* β: ``beta_mode="paper"`` (default) applies β *after* the row normalisation, as the paper describes;
  ``"authors"`` scales first, as the authors' public code does, and min-max normalisation cancels any positive
  scale, so every impression gets β = 1. The paper's 79.62% was made with that code
  (:func:`dirichlet_concentration`).
* ``student_tau`` (default ``None``: τ, the paper's) re-tempers the teacher's answers for the student's KL.
* Each impression's crafting loss is summed over the batch, so an impression's optimisation does not depend
  on ``craft_batch``. Pixels stay in [0, 1] by clamping after every Adam step (``parametrisation="clamp"``;
  ``"sigmoid"`` optimises ``z`` with ``x = sigmoid(z)``).
* Ingredients: ``impressions`` (phases ``"craft impressions"``, ``"label impressions"``) and, in the smoke
  and laptop profiles, ``relabelled-copies`` (phase ``"relabel copies"``): ``copies`` copies of every
  impression, black outside a random centred box and blurred (:func:`~labkit.synthesis.augment.border_blur_copies`),
  each labelled by the teacher at τ (one counted query per copy): the paper's relabelled augmentation.
  The copies are a lab addition: their recipe is a real-image prior tuned on the labelled validation split.
  ``variant="paper"`` (and the paper profile) keeps the impressions only. Smoke and laptop craft far fewer
  impressions with far fewer steps at craft lr 0.1 (a size reduction: fewer, larger steps).
* Selection: a ``holdout_fraction`` share of the impressions, labelled with the teacher's top-1 class,
  selects the epoch; copies of held-out impressions stay in the holdout.

The experiments behind the laptop profile are in ``docs/methods/zskd.md``; how each setting was chosen is in
``docs/selection.md``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from labkit.core.blackbox import BlackBox
from labkit.core.config import MethodConfig, option
from labkit.core.errors import AccessDenied, ConfigError, UnknownNameError
from labkit.core.losses import SoftLabelKD
from labkit.core.train import split_holdout
from labkit.core.transfer import Ingredient, TrainRecipe, TransferSet
from labkit.methods.base import DistillationMethod, MethodData, RunContext, register_method
from labkit.synthesis.augment import border_blur_copies
from labkit.synthesis.base import Snapshot, SynthesisResult, Synthesizer

#: The smallest Dirichlet concentration used: min-max normalisation maps each row's least
#: similar class to exactly 0, and a Dirichlet needs every concentration > 0.
CONCENTRATION_FLOOR = 1e-3
#: The paper's number of Data Impressions per data set (METHODS.md §4).
PAPER_IMPRESSIONS = {"mnist": 24_000, "fashion-mnist": 48_000, "cifar10": 40_000}
IMPRESSIONS = "impressions"
#: where β enters the Dirichlet concentration (see :func:`dirichlet_concentration`)
BETA_MODES = ("paper", "authors")
COPIES = "relabelled-copies"
CRAFT_PHASES, COPY_PHASE = ("craft impressions", "label impressions"), "relabel copies"  # the ingredients' phases

_PROFILES: dict[str, dict[str, Any]] = {
    "smoke": {"ingredients": (IMPRESSIONS, COPIES), "impressions": 300, "iterations": 20, "craft_batch": 300,
              "epochs": 6, "batch_size": 32, "student_tau": 4.0},
    # 9000 x 16 steps (not 6000 x 25: same crafting cost) plus one copy each, student lr 1e-2 (validation split);
    # student_tau 4 (teacher-labelled holdout, seeds 0-2): docs/methods/zskd.md and docs/selection.md
    "laptop": {"ingredients": (IMPRESSIONS, COPIES), "impressions": 9000, "iterations": 16, "craft_batch": 3000,
               "epochs": 15, "batch_size": 128, "lr": 1e-2, "student_tau": 4.0},
    # the paper: 48k impressions for Fashion-MNIST (profile_values picks the data set's count), 1500 steps at 0.01
    "paper": {"ingredients": (IMPRESSIONS,), "impressions": PAPER_IMPRESSIONS["fashion-mnist"], "iterations": 1500,
              "craft_batch": 8000, "epochs": 40, "batch_size": 256, "craft_lr": 0.01, "variant": "paper"},
}


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class ZSKDConfig(MethodConfig):
    """Sizes and settings of ZSKD; the per-profile values are :attr:`PROFILES`."""

    PROFILES = _PROFILES
    TITLE = "ZSKD option"
    #: the paper's mechanism: impressions only, β after the normalisation, the student at the crafting τ
    VARIANTS = {"lab": {}, "paper": {"ingredients": (IMPRESSIONS,), "beta_mode": "paper", "student_tau": None}}
    INGREDIENTS = {IMPRESSIONS: "Data Impressions crafted from Dirichlet targets, labelled by the teacher at tau",
                   COPIES: "dark-border + blur copies of every impression, each relabelled by the teacher at tau"}

    ingredients: tuple[str, ...] = option(help="parts of the transfer set")
    impressions: int = option(help="number of Data Impressions to craft (paper: 48000 for Fashion-MNIST)")
    iterations: int = option(help="Adam steps per impression (paper: 1500)")
    craft_batch: int = option(help="impressions crafted at once (thousands on a GPU)")
    epochs: int = option(help="student epochs")
    batch_size: int = option(help="student batch size")
    craft_lr: float = option(0.1, help="Adam learning rate on the pixels (paper: 0.01)")
    lr: float = option(5e-3, help="student learning rate (Adam, one-cycle)")
    tau: float = option(20.0, help="temperature for crafting, labelling and the student's KL")
    betas: tuple[float, ...] = option((1.0, 0.1), help="Dirichlet scales, an equal share of impressions each")
    beta_mode: str = option("paper", choices=BETA_MODES, help="paper: β scales the row-normalised similarity, as "
                            "the paper describes; authors: β scales before the normalisation, as the authors' code "
                            "does, so it cancels (every impression effectively β = 1)")
    student_tau: float | None = option(None, help="temperature of the student's KL and of its targets (re-tempered "
                                       "from the teacher's answers at tau); None: tau, as in the paper")
    variant: str = option("lab", choices=tuple(VARIANTS), help="paper: impressions only, the paper's β and τ; "
                          "lab: the profile as is")
    parametrisation: str = option("clamp", choices=("clamp", "sigmoid"),
                                  help="keep pixels in [0,1] by clamping after each Adam step, or via a sigmoid")
    copies: int = option(1, help="relabelled dark-border/blur copies per impression (ingredient relabelled-copies)")
    copy_box: tuple[float, float] = option((0.3, 1.0), help="side of the kept centred box, fraction of the image side")
    copy_blur: tuple[float, float] = option((0.5, 1.5), help="Gaussian blur sigma range of the copies (pixels)")
    holdout_fraction: float = option(0.1, help="share of impressions kept aside (teacher-labelled) to select the epoch")
    snapshots: int = option(12, help="snapshots of the optimisation kept for the evolution plot", cli=False)

    @classmethod
    def profile_values(cls, profile: str, dataset: str | None = None) -> dict[str, Any]:
        """The profile's table; the paper profile takes the data set's impressions count (24k MNIST, 40k CIFAR-10)."""
        values = super().profile_values(profile, dataset)
        if profile == "paper":
            values["impressions"] = PAPER_IMPRESSIONS.get(dataset or "fashion-mnist", values["impressions"])
        return values

    def validate(self) -> None:
        """Raise :class:`~labkit.core.errors.ConfigError` with advice for settings that cannot work."""
        if self.impressions < 2:
            raise ConfigError("ZSKD needs at least 2 impressions (some are held out for model selection)")
        if min(self.iterations, self.craft_batch) < 1:
            raise ConfigError("iterations and craft_batch must be >= 1")
        if not self.betas or min(self.craft_lr, self.tau, *self.betas) <= 0:
            raise ConfigError(f"craft_lr, tau and the betas must be > 0 (betas not empty), got betas {self.betas}")
        if self.parametrisation not in ("clamp", "sigmoid"):
            raise ConfigError(f"parametrisation must be 'clamp' or 'sigmoid', got {self.parametrisation!r}")
        if self.beta_mode not in BETA_MODES:
            raise UnknownNameError("ZSKD beta_mode", self.beta_mode, BETA_MODES)
        if self.student_tau is not None and self.student_tau <= 0:
            raise ConfigError(f"student_tau must be > 0 (or None for tau), got {self.student_tau}")
        if not 0 < self.holdout_fraction < 1:
            raise ConfigError("holdout_fraction must lie strictly between 0 and 1")
        if self.uses(COPIES) and self.copies < 1:
            raise ConfigError(f"copies must be >= 1; to train without copies leave out the {COPIES!r} ingredient")
        if not self.uses(IMPRESSIONS):
            raise ConfigError(f"the {COPIES!r} ingredient copies the impressions: keep {IMPRESSIONS!r} in ingredients")
        lo, hi = self.copy_box
        if not 0 < lo <= hi <= 1:
            raise ConfigError(f"copy_box must be 0 < low <= high <= 1 (fractions of the side), got {self.copy_box}")
        if not 0 < self.copy_blur[0] <= self.copy_blur[1]:
            raise ConfigError(f"copy_blur must be 0 < low <= high (pixels), got {self.copy_blur}")


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
    """Crafts Data Impressions through a white box (see the module doc for the recipe).

    ``synthesize(n)`` returns a :class:`~labkit.synthesis.base.SynthesisResult` whose ``images``
    are the impressions (N×C×H×W in [0, 1]) and whose ``targets`` are the teacher's soft
    labels at τ on them (one counted labelling pass, phase ``"label impressions"``).
    ``extras`` holds ``classes``, ``betas``, ``dirichlet_targets`` (the sampled y),
    ``loss_history`` (mean crafting loss before each step and after the last) and
    ``final_loss`` (per impression).
    """

    def __init__(self, box: BlackBox, *, iterations: int = 1500, lr: float = 0.01, batch_size: int = 4096,
                 tau: float = 20.0, betas: tuple[float, ...] = (1.0, 0.1), parametrisation: str = "clamp",
                 snapshots: int = 12, similarity: torch.Tensor | None = None, seed: int = 0,
                 beta_mode: str = "paper") -> None:
        super().__init__(require_white_box(box), seed)
        if box.input_shape is None or box.num_classes is None:
            raise ValueError("the box must know its input_shape and num_classes to craft impressions "
                             "(BlackBox(model, access='white', input_shape=..., num_classes=...))")
        if parametrisation not in ("clamp", "sigmoid"):
            raise ValueError(f"parametrisation must be 'clamp' or 'sigmoid', got {parametrisation!r}")
        self.iterations, self.lr, self.batch_size, self.tau = int(iterations), float(lr), int(batch_size), float(tau)
        self.input_shape, self.num_classes = tuple(box.input_shape), int(box.num_classes)
        self.betas, self.parametrisation, self.n_snapshots = tuple(betas), parametrisation, int(snapshots)
        self.beta_mode = beta_mode
        self.similarity = (similarity if similarity is not None else teacher_class_similarity(box)).to(box.device)
        self._made = 0  # impressions made so far (offsets the plan and the seeds across calls)

    def snapshot_steps(self) -> list[int]:
        """The steps at which snapshots are taken: 0 (noise), evenly spaced ones, and the last."""
        k = max(2, self.n_snapshots)
        return sorted({round(i * self.iterations / (k - 1)) for i in range(k)})

    def _pixels(self, param: torch.Tensor) -> torch.Tensor:
        """The images a parameter tensor stands for (itself when clamping, its sigmoid otherwise)."""
        return param if self.parametrisation == "clamp" else torch.sigmoid(param)

    def _synthesize(self, n: int, progress: bool) -> SynthesisResult:
        box, dev, c = self.box, self.box.device, self.num_classes
        plan_classes, plan_betas = impression_plan(self._made + n, c, self.betas, device=dev)
        classes, betas = plan_classes[self._made:], plan_betas[self._made:]
        targets = dirichlet_targets(self.similarity, classes, betas, seed=self.seed * 1_000_003 + self._made,
                                    beta_mode=self.beta_mode)
        gen = torch.Generator().manual_seed(self.seed * 1_000_003 + self._made + 1)
        images = torch.rand((n, *self.input_shape), generator=gen).to(dev)
        loss_sum = torch.zeros(self.iterations + 1, device=dev)
        final_loss = torch.empty(n, device=dev)
        soft = torch.empty(n, c, device=dev)
        snap_steps = set(self.snapshot_steps())
        snap_count = min(n, c)  # one impression per class: the first C of the plan
        snapshots: list[Snapshot] = []
        chunks = range(0, n, self.batch_size)
        bar = tqdm(total=len(chunks) * self.iterations, desc="crafting impressions", disable=not progress, leave=False)
        for start in chunks:
            stop = min(n, start + self.batch_size)
            y = targets[start:stop]
            x0 = images[start:stop]
            if self.parametrisation == "clamp":
                param = x0.clone().requires_grad_(True)
            else:
                param = torch.logit(x0.clamp(1e-3, 1 - 1e-3)).requires_grad_(True)
            opt = torch.optim.Adam([param], lr=self.lr)
            keep = start == 0 and snap_count > 0
            with box.phase("craft impressions"):
                for step in range(self.iterations):
                    x = self._pixels(param)
                    if keep and step in snap_steps:
                        snapshots.append(Snapshot(step, x[:snap_count].detach().cpu().clone(),
                                                  classes[:snap_count].cpu()))
                    loss = impression_loss(box(x), y, self.tau)
                    loss_sum[step] += loss.detach().sum()
                    opt.zero_grad(set_to_none=True)
                    loss.sum().backward()
                    opt.step()
                    if self.parametrisation == "clamp":
                        with torch.no_grad():
                            param.clamp_(0.0, 1.0)
                    bar.update(1)
            x = self._pixels(param).detach()
            with torch.no_grad(), box.phase("label impressions"):
                logits = box(x).float()
            final_loss[start:stop] = impression_loss(logits, y, self.tau)
            loss_sum[self.iterations] += final_loss[start:stop].sum()
            soft[start:stop] = torch.softmax(logits / self.tau, dim=1)
            images[start:stop] = x
            if keep and self.iterations in snap_steps:
                snapshots.append(Snapshot(self.iterations, x[:snap_count].cpu().clone(), classes[:snap_count].cpu()))
        bar.close()
        self._made += n
        extras: dict[str, object] = {
            "classes": classes, "betas": betas, "dirichlet_targets": targets,
            "loss_history": (loss_sum / n).cpu(), "final_loss": final_loss, "tau": self.tau,
        }
        return SynthesisResult(images, soft, snapshots, extras)


# --------------------------------------------------------------------------- the transfer set
def relabelled_copies(box: BlackBox, images: torch.Tensor, copies: int, tau: float, *, seed: int = 0,
                      box_fraction: tuple[float, float] = (0.3, 1.0), blur: tuple[float, float] = (0.5, 1.5),
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """``copies`` :func:`~labkit.synthesis.augment.border_blur_copies` of every impression, each labelled by the
    teacher's
    softmax at ``tau`` (one counted query per copy, phase ``"relabel copies"``). Returns ``(images, soft_labels)``."""
    c = int(box.num_classes or 0)
    if copies <= 0 or images.shape[0] == 0:
        return images[:0], torch.empty(0, c, device=images.device)
    gen = torch.Generator().manual_seed(seed * 1_000_003 + 17)
    xs = torch.cat([border_blur_copies(images, gen, box_fraction, blur) for _ in range(copies)])
    with torch.no_grad(), box.phase(COPY_PHASE):
        soft = torch.softmax(box(xs).float() / tau, dim=1)  # one call; the box chunks by memory
    return xs, soft.to(xs.device)


def impression_transfer_set(box: BlackBox, images: torch.Tensor, soft_labels: torch.Tensor, cfg: ZSKDConfig, *,
                            seed: int = 0, desc: str = "ZSKD student") -> TransferSet:
    """The transfer set built from crafted impressions and their teacher soft labels at ``cfg.tau``.

    A ``cfg.holdout_fraction`` share of the impressions is held out and labelled with the teacher's top-1
    class (from the soft labels already queried). With the ``relabelled-copies`` ingredient every impression
    also gets ``cfg.copies`` :func:`relabelled_copies` (counted queries): copies of held-out impressions join
    the holdout, the others the training rows (impressions first, then their copies).
    """
    keep, hold = split_holdout(images.shape[0], cfg.holdout_fraction, seed, device=images.device)
    x_train, p_train, x_hold, p_hold = images[keep], soft_labels[keep], images[hold], soft_labels[hold]
    ingredients = [Ingredient(IMPRESSIONS, phases=CRAFT_PHASES, holdout_rows=int(hold.numel()))]
    source = torch.zeros(x_train.shape[0], dtype=torch.long, device=images.device)
    if cfg.uses(COPIES):  # copies of held-out impressions stay in the holdout: no copy leaks across the split
        parts = []
        for offset, (x, p) in enumerate(((x_train, p_train), (x_hold, p_hold))):
            xc, pc = relabelled_copies(box, x, cfg.copies, cfg.tau, seed=2 * seed + offset,
                                       box_fraction=cfg.copy_box, blur=cfg.copy_blur)
            parts.append((torch.cat([x, xc]), torch.cat([p, pc.to(p)]), int(xc.shape[0])))
        (x_train, p_train, n_copies), (x_hold, p_hold, n_hold_copies) = parts
        ingredients.append(Ingredient(COPIES, phases=(COPY_PHASE,), holdout_rows=n_hold_copies))
        source = torch.cat([source, torch.ones(n_copies, dtype=torch.long, device=images.device)])
    selection = f"teacher-labelled holdout of {int(hold.numel())} impressions" + (
        f" and their {cfg.copies} relabelled copies each" if cfg.uses(COPIES) else "")
    student_tau = cfg.tau if cfg.student_tau is None else cfg.student_tau
    if student_tau != cfg.tau:  # softmax(z/τ) re-tempered to softmax(z/τ_s): exact, no new query
        p_train = torch.softmax(torch.log(p_train.clamp_min(1e-30)) * (cfg.tau / student_tau), dim=1)
    return TransferSet(x_train, (p_train,), "probabilities", SoftLabelKD(tau=student_tau),
                       TrainRecipe(cfg.epochs, cfg.batch_size, cfg.lr, desc=desc), ingredients, source=source,
                       holdout=(x_hold, p_hold.argmax(1)), selection=selection)


# --------------------------------------------------------------------------- the method
@register_method
class ZSKD(DistillationMethod[ZSKDConfig]):
    """ZSKD (Nayak et al. 2019): craft Data Impressions through a white-box teacher from Dirichlet
    targets built on the final layer's class similarity; the student learns them with τ²·KL."""

    name = "zskd"
    access = "white"
    data_access = "none"
    summary = "ZSKD Data Impressions: white-box, no data; Dirichlet targets from class similarity"
    config_class = ZSKDConfig

    def distill(self, box: BlackBox | None, data: MethodData, ctx: RunContext) -> TransferSet:
        """Craft ``cfg.impressions`` impressions, label them (and their copies) with the teacher at τ."""
        box = require_white_box(box)
        cfg = self.config(ctx)
        similarity = teacher_class_similarity(box)
        synth = DataImpressionSynthesizer(box, iterations=cfg.iterations, lr=cfg.craft_lr, batch_size=cfg.craft_batch,
                                          tau=cfg.tau, betas=cfg.betas, parametrisation=cfg.parametrisation,
                                          snapshots=cfg.snapshots, similarity=similarity, seed=ctx.seed,
                                          beta_mode=cfg.beta_mode)
        result = synth.synthesize(cfg.impressions, progress=ctx.progress)
        transfer = impression_transfer_set(box, result.images, result.targets, cfg, seed=ctx.seed)
        losses = torch.as_tensor(result.extras["loss_history"])
        transfer.extras = {"config": cfg.as_dict(), "impressions": len(result),
                           "crafting_loss_start": round(float(losses[0]), 4),
                           "crafting_loss_end": round(float(losses[-1]), 4),
                           "class_similarity": [[round(float(v), 4) for v in row] for row in similarity.cpu()]}
        transfer.artifacts = {"synthesis": result, "similarity": similarity, "config": cfg}
        return transfer
