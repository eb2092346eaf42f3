"""labkit: the helper package of the black-box distillation lab.

Quick tour::

    from labkit import load_dataset, get_teacher, BlackBox, run_method
    teacher = get_teacher("fashion-mnist")                 # cached, hash-checked
    box = BlackBox(teacher.model, access="decision")       # counted, decision-only
    run = run_method("kd", profile="laptop")               # a ResultRecord in run.record
"""
from .blackbox import ACCESS_LEVELS, BlackBox
from .data import LabeledTensors, dataset_info, load_dataset, load_splits
from .device import pick_device, seed_everything
from .errors import (
                     AccessDenied,
                     CheckpointError,
                     ConfigError,
                     DatasetNotFoundError,
                     InvalidQueryError,
                     LabkitError,
                     NonFiniteError,
                     QueryBudgetExceeded,
                     UnknownNameError,
)
from .methods.base import available_methods, get_method
from .models import build_model, count_parameters
from .profiles import Profile, get_profile
from .results import ResultRecord
from .runner import MethodRun, run_method
from .teachers import get_teacher

__version__ = "0.1.0"

__all__ = [
    "ACCESS_LEVELS", "AccessDenied", "BlackBox", "CheckpointError", "ConfigError", "DatasetNotFoundError",
    "InvalidQueryError",
    "LabeledTensors", "LabkitError", "MethodRun", "NonFiniteError", "Profile", "QueryBudgetExceeded", "ResultRecord",
    "UnknownNameError", "available_methods", "build_model", "count_parameters", "dataset_info", "get_method",
    "get_profile", "get_teacher", "load_dataset", "load_splits", "pick_device", "run_method", "seed_everything",
]
