"""Each notebook's main run: the method and the options it passes besides the profile's sizes.

A notebook prints its main run's estimate (:func:`labkit.studies.cost.check_time`) before it starts, and refuses one
over its ``MAX_MINUTES``. These are the same runs at the ``gpu`` profile: the tests estimate each on a T4 from the
committed figures (:data:`labkit.studies.cost.T4`) and hold it to five minutes, and ``make gpu-check`` runs them on a
real GPU and puts the measured time beside the estimate (``docs/cost.md``).
"""
from __future__ import annotations

from typing import Any

#: notebook -> ((method, options), ...) of its main run on the gpu profile (notebook 03's sizes are its gpu picks)
NOTEBOOK_MAIN_RUNS: dict[str, tuple[tuple[str, dict[str, Any]], ...]] = {
    "01_kd_fundamentals": (("kd", {"tau": 4.0, "alpha": 0.1}),),
    "03_db3kd": (("db3kd", {"train_limit": None, "measure": "bd", "queries_per_sample": 200, "tau": 20.0,
                            "soft_size": 20_000}),),
    "04_data_impressions": (("zskd", {}),),
    "05_pseudo_samples": (("zsdb3kd", {}),),
    "06_few_shot_black_box": (("fsbbt", {}),),
    "07_generative_alignment": (("mekd", {"response": "soft", "inverse_check": 500}),),
    "09_after_the_seed_papers": (("ideal", {}),),
}
