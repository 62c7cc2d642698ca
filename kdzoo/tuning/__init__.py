"""Frame-count search: keras-tuner over the student's k, sampler, loss weights and learning rate,
with a quality-vs-FLOPs Pareto report and the best student saved as a zoo-style entry."""

from kdzoo.tuning.curve import curve_trials
from kdzoo.tuning.pareto import pareto_front, write_report
from kdzoo.tuning.search import (
    OBJECTIVE,
    QUALITY,
    FrameSearchHyperModel,
    TradeoffCallback,
    make_tuner,
    run_search,
    save_best_student,
    trial_records,
)
from kdzoo.tuning.settings import TuneSettings, load_tune_config, parse_tune_section

__all__ = [
    "curve_trials",
    "OBJECTIVE",
    "QUALITY",
    "FrameSearchHyperModel",
    "TradeoffCallback",
    "TuneSettings",
    "load_tune_config",
    "make_tuner",
    "pareto_front",
    "parse_tune_section",
    "run_search",
    "save_best_student",
    "trial_records",
    "write_report",
]
