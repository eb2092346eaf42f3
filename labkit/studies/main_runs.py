"""Each notebook's main run: the method and the options it passes besides the profile's sizes.

A notebook prints its main run's estimate (:func:`labkit.studies.cost.check_time`) before it starts, and refuses one
over its ``MAX_MINUTES``. The tests estimate each run at the ``gpu`` profile on a T4 from the committed figures
(:data:`labkit.studies.cost.T4`) and hold it to five minutes; ``make gpu-check`` runs them on a real GPU, and
``python -m labkit cost-check --notebooks`` on any profile, and puts the measured time beside the estimate
(``docs/cost.md``). A test holds each run to what its notebook starts with its parameters cell's defaults.
"""
from __future__ import annotations

from typing import Any

from labkit.core.profiles import get_profile, pick

MainRuns = dict[str, tuple[tuple[str, dict[str, Any]], ...]]


def db3kd_notebook_sizes(profile: str) -> dict[str, Any]:
    """Notebook 03's own DB3KD sizes on ``profile``: its training rows, soft-labelled rows and queries per image."""
    return {"train_limit": pick(profile, 1000, 10000, None, gpu=None),
            "soft_size": pick(profile, 150, 3000, None, gpu=20_000),
            "queries_per_sample": pick(profile, 60, 100, 2000, gpu=200)}


def notebook_main_runs(profile: str = "gpu") -> MainRuns:
    """notebook -> ((method, options), ...) of its main run on ``profile``, with its parameters cell's defaults."""
    name = get_profile(profile).name
    return {
        "01_kd_fundamentals": (("kd", {"tau": 4.0, "alpha": 0.1}),),
        "03_db3kd": (("db3kd", {"measure": "bd", "tau": 20.0, **db3kd_notebook_sizes(name)}),),
        "04_data_impressions": (("zskd", {}),),
        "05_pseudo_samples": (("zsdb3kd", {}),),
        "06_few_shot_black_box": (("fsbbt", {}),),
        "07_generative_alignment": (("mekd", {"response": "soft", "inverse_check": 500}),),
        "09_after_the_seed_papers": (("ideal", {}),),
    }


#: the main runs on the gpu profile, which the T4 check holds to five minutes
NOTEBOOK_MAIN_RUNS: MainRuns = notebook_main_runs("gpu")
