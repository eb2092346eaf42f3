"""Every matplotlib plot function closes its figure, so a notebook cell shows it once (as the cell's value)."""
from __future__ import annotations

import ast

from labkit.core.paths import REPO_ROOT


def test_matplotlib_plot_functions_close_their_figures() -> None:
    missing = []
    for path in sorted((REPO_ROOT / "labkit" / "plots").glob("*.py")):
        text = path.read_text()
        for fn in (n for n in ast.walk(ast.parse(text)) if isinstance(n, ast.FunctionDef)):
            src = ast.get_source_segment(text, fn) or ""
            if ("plt.subplots" in src or "plt.figure(" in src) and "plt.close" not in src and "finish_axes" not in src:
                missing.append(f"{path.name}:{fn.name}")
    assert not missing, f"these plot functions leave their figure open (shown twice in a notebook): {missing}"


def test_boundary_plots_leave_no_open_figure() -> None:
    import matplotlib.pyplot as plt
    import torch

    from labkit.teaching.plots import boundaries

    plt.close("all")
    p = torch.softmax(torch.randn(20, 3), dim=1)
    boundaries.soft_label_distributions({"BD": p})
    boundaries.rank_agreement_figure({"BD": torch.rand(20)}, {"BD": 0.5})
    boundaries.accuracy_vs_queries({"BD": [(10, 0.7), (100, 0.75)]}, {"KD": 0.8})
    boundaries.accuracy_bars({"a": 0.8, "b": 0.7})
    assert plt.get_fignums() == []
