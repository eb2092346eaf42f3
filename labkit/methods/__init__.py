"""The distillation methods: :mod:`labkit.methods.base` and one module per method.

Importing this package imports every method module, and each registers its methods with ``@register_method``
(:func:`labkit.methods.base.get_method` finds them by name). A new method module is added to this list.
"""
from labkit.methods import db3kd, fsbbt, ideal, kd, kd_edge, mekd, noise_kd, zsdb3kd, zskd

__all__ = ["db3kd", "fsbbt", "ideal", "kd", "kd_edge", "mekd", "noise_kd", "zsdb3kd", "zskd"]
