"""The paper's experiment grid on real data: one command, one JSON, one Markdown table.

``kdzoo reproduce CONFIG --data-dir DIR`` trains and evaluates, with the zoo recipe in
CONFIG (``zoo_configs/<family>.<dataset>.yaml``), every row of the paper's Table 1
(Bhardwaj et al., CVPR 2019) for each student budget k:

    teacher                              all frames (one row, shared by every k)
    k<k>/no_teacher/<sampler>            labels only, for each of kdzoo.sampling.SAMPLERS
    k<k>/parallel/<losses>               rep | rep+ce | rep+pred+ce
    k<k>/serial/<losses>                 rep | pred | rep+ce | pred+ce | rep+pred+ce
    k<k>/serial/rep+pred+ce+inter        also matches the intermediate representation
                                         (VLAD families only: the normalised VLAD matrix)

Every row runs with seed 0; the headline rows (the teacher, and per k the distilled and
the no-teacher row with the best *validation* GAP@20 at seed 0) also run with seeds
1 .. N-1 and are reported as mean ± std. Serial rows learn from the seed-0 teacher,
frozen; parallel rows train a fresh teacher alongside the student.

Each row runs in its own folder ``<work_dir>/rows/<row id>@<seed>/``; its ``row.json`` is
written last, so a stopped run continues where it stopped and finished rows are never
re-run (``kdzoo.training.fit_stage`` resumes the row's epochs). ``--rows`` selects a part
of the grid by fnmatch patterns on the row id (``"k2/*"``, ``"teacher,k2/serial/*"``).

Conventions (also written into the JSON):

* Loss weights come from the recipe's ``distillation`` section; a row keeps the weights
  of the losses it names and sets the others to 0.
* A row without L_CE and L_pred (``.../rep``) never trains the student's classifier: the
  student classifies with the teacher's head (copied into it; in parallel mode before
  every validation, as the teacher's head keeps training). A student whose embedding is
  of another width gets a linear layer to the teacher's width (model config
  ``embedding_size``), which it keeps at inference and in its cost.
* Students are evaluated on the recipe's deterministic sampler (``sampler:``); a
  no-teacher row with a deterministic sampler is evaluated on its own sampler (the
  paper's baselines), the random row on the recipe's sampler.
* Metrics on the whole eval split: GAP@20, mAP, Hit@1; cost per video: aggregator and
  head FLOPs (``kdzoo.profiling.flops``) and parameters.

Modules: ``grid`` (the rows and their selection), ``setting`` (the data, its split and the
recipe fingerprint), ``runner`` (`Reproduction`: training, checkpointing and evaluating
rows), ``costs`` (FLOPs and parameters per video), ``report`` (summaries over seeds, the
paper's claims, the Markdown table).
"""

from kdzoo.reproduce.costs import RowCosts, cost, encoder_cost
from kdzoo.reproduce.grid import (
    DEFAULT_WEIGHTS, INTERMEDIATE_ROW, LOSS_KEYS, PAPER_K, TABLE1, Row, grid, loss_weights, paper_ks, select,
)
from kdzoo.reproduce.report import LOSS_PAIRS, METRICS, comparisons, machine, main, markdown, summarize
from kdzoo.reproduce.runner import Reproduction, copy_head
from kdzoo.reproduce.setting import Setting, config_fingerprint, reproduce_config

__all__ = [
    "DEFAULT_WEIGHTS", "INTERMEDIATE_ROW", "LOSS_KEYS", "LOSS_PAIRS", "METRICS", "PAPER_K", "TABLE1",
    "Reproduction", "Row", "RowCosts", "Setting", "comparisons", "config_fingerprint", "copy_head", "cost",
    "encoder_cost", "grid", "loss_weights", "machine", "main", "markdown", "paper_ks", "reproduce_config",
    "select", "summarize",
]
