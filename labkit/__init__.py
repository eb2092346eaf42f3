"""labkit: the helper package of the black-box distillation lab.

Quick tour::

    from labkit import load_dataset, get_teacher, BlackBox, run_method
    teacher = get_teacher("fashion-mnist")                 # cached, hash-checked
    box = BlackBox(teacher.model, access="decision")       # counted, decision-only
    run = run_method("kd", profile="laptop")               # a ResultRecord in run.record
"""
from labkit.core import LABKIT_VERSION
from labkit.core.blackbox import ACCESS_LEVELS, BlackBox
from labkit.core.data import LabeledTensors, dataset_info, load_dataset, load_splits
from labkit.core.device import pick_device, seed_everything
from labkit.core.errors import (
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
from labkit.core.models import build_model, count_parameters
from labkit.core.profiles import Profile, get_profile
from labkit.core.remote import RemoteBlackBox, access_boxes, served_teacher, submit, teacher_box, teacher_card
from labkit.core.results import ResultRecord
from labkit.core.teachers import get_teacher
from labkit.methods.base import available_methods, get_method
from labkit.studies.cost import Estimate, RunTooLong, check_time, estimate_run
from labkit.studies.runner import MethodRun, run_method

__version__ = LABKIT_VERSION

__all__ = [
    "ACCESS_LEVELS", "AccessDenied", "BlackBox", "CheckpointError", "ConfigError", "DatasetNotFoundError",
    "Estimate", "InvalidQueryError", "RunTooLong", "check_time", "estimate_run",
    "LabeledTensors", "LabkitError", "MethodRun", "NonFiniteError", "Profile", "QueryBudgetExceeded", "ResultRecord",
    "UnknownNameError", "available_methods", "build_model", "count_parameters", "dataset_info", "get_method",
    "get_profile", "get_teacher", "load_dataset", "load_splits", "pick_device", "run_method", "seed_everything",
    "RemoteBlackBox", "access_boxes", "served_teacher", "submit", "teacher_box", "teacher_card",
]
