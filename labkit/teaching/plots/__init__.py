"""Figures for the notebooks. Every function returns a figure object (matplotlib or plotly),
so tests can check it headlessly; nothing here calls ``show()``.

Topic modules live beside this one (``labkit.teaching.plots.<topic>``); the general ones are here.
"""
from labkit.core.metrics import entropy
from labkit.teaching.plots.core import (
                   entropy_histogram,
                   few_labels_plot,
                   history_plot,
                   image_grid,
                   soft_label_bars,
                   soft_label_figure,
                   update_soft_label_figure,
)

__all__ = ["entropy", "entropy_histogram", "few_labels_plot", "history_plot", "image_grid", "soft_label_bars",
           "soft_label_figure", "update_soft_label_figure"]
