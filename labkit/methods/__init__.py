"""The distillation methods: :mod:`labkit.methods.base` and one module per method.

Importing this package imports every method module, and each registers its methods with ``@register_method``
(:func:`labkit.methods.base.get_method` finds them by name). A new method module is added to this list, and its
work plan to :mod:`labkit.methods.work_plans`.
"""
from labkit.methods import (
    db3kd,
    fsbbt,
    ideal,
    kd,
    kd_edge,
    mekd,
    noise_kd,
    work_plans,  # after the methods: each method's work plan, for the cost model
    zsdb3kd,
    zskd,
)

__all__ = ["db3kd", "fsbbt", "ideal", "kd", "kd_edge", "mekd", "noise_kd", "work_plans", "zsdb3kd", "zskd"]
