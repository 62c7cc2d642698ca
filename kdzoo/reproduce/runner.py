"""Runs the rows of a reproduction, each in its own resumable folder."""

from __future__ import annotations

import os
import pathlib
import time
from collections.abc import Sequence
from typing import Any

import keras

from kdzoo.distillation import Distiller
from kdzoo.evaluation import predict_files, score
from kdzoo.models import build_model, embedding_size
from kdzoo.reproduce.costs import RowCosts
from kdzoo.reproduce.grid import LOSS_KEYS, Row, grid, loss_weights, paper_ks, select
from kdzoo.reproduce.report import machine, markdown, summarize, utc_now
from kdzoo.reproduce.setting import Setting, config_fingerprint
from kdzoo.training import fit_stage, load_teacher, teacher_distiller
from kdzoo.zoo import artifacts
from kdzoo.zoo.config import ZooConfig


def copy_head(source: keras.Model, target: keras.Model) -> None:
    """Copies the weights of every layer after the embedding (the classifier) from source to target.

    Raises ValueError when the two heads differ in shape (build the student with the
    teacher's ``embedding_size`` to classify with the teacher's head).
    """
    names = [layer.name for layer in target.layers]
    for layer in target.layers[names.index("embedding") + 1:]:
        if layer.weights:
            theirs = [tuple(w.shape) for w in source.get_layer(layer.name).weights]
            ours = [tuple(w.shape) for w in layer.weights]
            if theirs != ours:
                raise ValueError(
                    f"An L_rep-only row classifies with its teacher's head, but the student's head "
                    f"layer '{layer.name}' has weights of shapes {ours} and the teacher's {theirs}: "
                    "the heads differ in width; build the student with the teacher's embedding_size.")
            layer.set_weights(source.get_layer(layer.name).get_weights())


class _TieHead(keras.callbacks.Callback):
    """Parallel ``rep`` rows: the student classifies with the (training) teacher's head."""

    def __init__(self, teacher: keras.Model, student: keras.Model):
        super().__init__()
        self.teacher, self.student = teacher, student

    def on_test_begin(self, logs=None):
        copy_head(self.teacher, self.student)




class Reproduction:
    """Runs the grid of one zoo config, row by row, resumably (see the module docstring).

    Args:
        config: the zoo recipe.
        setting_data_dir: folder the config's relative data globs are under.
        work_dir: per-row run folders and results.
        ks: student budgets (default: the paper's for the dataset, `paper_ks`).
        seeds: seeds of the headline rows (1 runs every row once).
        teacher_weights: a zoo entry folder or ``.weights.h5`` of a trained teacher of this
            recipe, used as the seed-0 teacher instead of training one.
        epochs: override the recipe's teacher and student epochs (tests, smoke runs);
            recorded in the results.
        encoder: the per-frame encoder counted in the end-to-end cost: ``"default"`` (the
            dataset layout's, `kdzoo.encoders.DATASET_ENCODERS`, when its width matches the
            data), ``"none"``, or any `kdzoo.encoders.get_encoder` name or ``.keras`` path.
    """

    def __init__(self, config: ZooConfig, data_dir=None, work_dir: str | os.PathLike = "runs/reproduce", *,
                 ks: Sequence[int] | None = None, seeds: int = 3, teacher_weights: str | None = None,
                 epochs: int | None = None, encoder: str = "default", verbose: int = 1, command: str = ""):
        if seeds < 1:
            raise ValueError(f"Expected at least one seed. Received: seeds={seeds}")
        self.config = config
        self.setting = Setting.resolve(config, data_dir)
        self.work_dir = pathlib.Path(work_dir)
        self.ks = tuple(ks) if ks else paper_ks(config)
        bad = [k for k in self.ks if not 1 <= k <= config.spec.max_frames]
        if bad:
            raise ValueError(f"Student budgets {bad} are outside 1..{config.spec.max_frames} (the dataset's frames).")
        self.seeds = int(seeds)
        self.teacher_weights = teacher_weights
        self.epochs = epochs
        self.verbose = verbose
        self.command = command
        # Rows trained on a shortened schedule are never mixed with the recipe's.
        self.fingerprint = config_fingerprint(config) + (f"-epochs{int(epochs)}" if epochs else "")
        self._teacher: keras.Model | None = None
        self._teacher_record: dict = {}
        self.encoder = encoder
        self.row_cost = RowCosts(config, encoder)  # per-video cost of the teacher (None) or a k-frame student

    # ------------------------------------------------------------ bookkeeping
    def row_dir(self, row: Row) -> pathlib.Path:
        return self.work_dir / "rows" / row.key.replace("/", "__")

    def finished(self, row: Row) -> dict | None:
        path = self.row_dir(row) / "row.json"
        if not path.is_file():
            return None
        record = artifacts.read_json(path)
        if record.get("fingerprint") != self.fingerprint:
            raise ValueError(
                f"{path} was trained with another recipe (fingerprint {record.get('fingerprint')}, now "
                f"{self.fingerprint}). Use a new --work-dir, or remove that folder to retrain the row."
            )
        return record

    def import_rows(self, results: str | os.PathLike) -> list[str]:
        """Marks the rows finished in an earlier results file (``reproduce*.json``) as done here.

        A fresh checkout has no run folders, but the committed results hold every finished
        row's record; importing them lets ``run`` continue the grid instead of re-training it.
        Only records of this recipe (same fingerprint) are taken; rows already finished here
        are kept. Returns the keys of the rows imported.

        Raises:
            ValueError: the file is not a reproduce results file, or is of another recipe.
        """
        doc = artifacts.read_json(results)
        if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
            raise ValueError(f"{results} is not a kdzoo reproduce results file (no 'rows' list).")
        if doc.get("fingerprint") != self.fingerprint:
            raise ValueError(
                f"{results} holds rows of another recipe (fingerprint {doc.get('fingerprint')}, this one "
                f"{self.fingerprint}); only rows of the same config and epochs can be continued."
            )
        known = {row.key: row for row in grid(self.config.family, self.ks)}
        known.update({r.with_seed(s).key: r.with_seed(s) for r in list(known.values()) for s in range(1, self.seeds)})
        imported = []
        for record in doc["rows"]:
            row = known.get(f"{record.get('row')}@{record.get('seed', 0)}")
            if row is None or record.get("fingerprint") != self.fingerprint or self.finished(row) is not None:
                continue
            artifacts.atomic_write_json(self.row_dir(row) / "row.json", record)
            imported.append(row.key)
        return imported

    def planned(self, patterns: str | None = None) -> list[Row]:
        """The rows to run now: selected seed-0 rows, then the headline rows' other seeds.

        The best distilled / no-teacher row of a k is known once its seed-0 rows have run;
        until then its other seeds are not planned.
        """
        base = grid(self.config.family, self.ks)
        rows = select(base, patterns)
        extra = []
        for head in self.headline_rows(base):
            extra += [head.with_seed(s) for s in range(1, self.seeds)]
        return rows + [r for r in select(extra, patterns) if r not in rows]

    def headline_rows(self, base: Sequence[Row]) -> list[Row]:
        """The teacher and, per k, the finished seed-0 distilled and no-teacher rows with the best val GAP."""
        heads = [Row("teacher")]
        for k in self.ks:
            for kind in ("distilled", "no_teacher"):
                done = [(rec["best_val_gap"], r) for r in base if r.kind == kind and r.k == k
                        if (rec := self.finished(r)) and rec.get("best_val_gap") is not None]
                if done:
                    heads.append(max(done, key=lambda item: item[0])[1])
        return heads

    # ------------------------------------------------------------ models
    def _schedule(self, role: str) -> tuple[int, float]:
        """``(epochs, peak learning rate)`` of a ``"teacher"`` or ``"student"`` stage (the
        recipe's ``student_epochs`` / ``student_learning_rate`` default to the teacher's)."""
        t = self.config.training
        rate = float(t["learning_rate"] if role == "teacher" else (t.get("student_learning_rate") or t["learning_rate"]))
        if self.epochs:
            return int(self.epochs), rate
        return int(t["epochs"] if role == "teacher" else (t.get("student_epochs") or t["epochs"])), rate

    def _fit(self, distiller: Distiller, row: Row, role: str, callbacks=()) -> dict:
        t = self.config.training
        epochs, rate = self._schedule(role)
        train, val = self.setting.datasets(seed=int(t["seed"]) + row.seed)
        return fit_stage(distiller, train, val, self.row_dir(row) / "run", epochs=epochs,
                         learning_rate=rate, patience=int(t["patience"]),
                         verbose=self.verbose, warmup_epochs=int(t.get("warmup_epochs") or 0),
                         steps_per_epoch=self.setting.steps_per_epoch(), callbacks=list(callbacks))

    def teacher(self) -> keras.Model:
        """The seed-0 teacher: given weights, or trained (resumably) as the ``teacher@0`` row."""
        if self._teacher is None:
            self._teacher, self._teacher_record = self._train_teacher(Row("teacher"))
        return self._teacher

    def _train_teacher(self, row: Row) -> tuple[keras.Model, dict]:
        keras.utils.set_random_seed(int(self.config.training["seed"]) + row.seed)
        if row.seed == 0 and self.teacher_weights:
            return load_teacher(self.config, self.teacher_weights)
        model = build_model(self.config.model_config("teacher"))
        distiller = teacher_distiller(self.config, model, metric_capacity=self.setting.capacity())
        return model, self._fit(distiller, row, "teacher")

    def _train_student(self, row: Row) -> tuple[keras.Model, dict]:
        config, t = self.config, self.config.training
        keras.utils.set_random_seed(int(t["seed"]) + 1000 * row.seed + row.k)
        inter = "inter" in row.losses
        student_config = config.model_config("student", row.k)
        student = build_model({**student_config, "intermediate": inter})
        kwargs: dict[str, Any] = {"k": row.k, "seed": int(t["seed"]) + row.seed,
                                  "metric_capacity": self.setting.capacity()}
        callbacks, role = [], "student"
        if row.kind == "no_teacher":
            # A deterministic sampler trains and validates on its own frames; random trains on a
            # fresh subset each step and validates on the recipe's sampler (as it is evaluated).
            sampler = self.eval_sampler(row)
            distiller = Distiller(None, student, sampler=sampler, train_sampler=row.sampler, **kwargs)
            return student, self._fit(distiller, row, "student")
        weights = loss_weights(config, row.losses)
        recipe = {k: v for k, v in config.distillation.items() if k not in LOSS_KEYS.values() and k != "mode"}
        if row.mode == "serial":
            teacher = self.teacher()
            if inter:  # the same weights, with the intermediate output
                with_inter = build_model({**config.model_config("teacher"), "intermediate": True})
                with_inter.set_weights(teacher.get_weights())
                teacher = with_inter
        else:
            teacher = build_model({**config.model_config("teacher"), "intermediate": inter})
            role = "teacher"  # the teacher learns from scratch alongside: its schedule
        head_tied = weights["ce_weight"] == 0 and weights["prediction_weight"] == 0
        head, projected = "own", {}
        if head_tied:
            head = "teacher's"
            width = embedding_size(teacher)
            if embedding_size(student) != width:
                # A student of another embedding width reaches the teacher's head through a
                # linear layer of the model (it stays at inference, and is costed).
                head = f"teacher's, behind a {embedding_size(student)} -> {width} projection"
                student_config, projected = {**student_config, "embedding_size": width}, {"embedding_size": width}
                student = build_model({**student_config, "intermediate": inter})
            copy_head(teacher, student)
            if row.mode == "parallel":
                callbacks.append(_TieHead(teacher, student))
        distiller = Distiller(teacher, student, sampler=config.sampler, train_sampler=self.train_sampler,
                              mode=row.mode, **{**recipe, **weights}, **kwargs)
        record = self._fit(distiller, row, role, callbacks)
        if inter:  # evaluate and cost the plain model (same weights)
            plain = build_model(student_config)
            plain.set_weights(student.get_weights())
            student = plain
        return student, {**record, "loss_weights": weights, "head": head, **projected}

    @property
    def train_sampler(self) -> str:
        """Distilled students' training sampler: the recipe's ``train_sampler``."""
        return self.config.train_sampler

    # ------------------------------------------------------------ rows
    def eval_sampler(self, row: Row) -> str | None:
        if row.kind == "teacher":
            return None
        if row.kind == "no_teacher" and row.sampler != "random":
            return row.sampler
        return self.config.sampler

    def run_row(self, row: Row) -> dict:
        """Trains and evaluates one row, or returns its record if it is finished."""
        done = self.finished(row)
        if done is not None:
            return done
        started = time.time()
        if row.kind == "teacher" and row.seed == 0:
            model, record = self.teacher(), self._teacher_record
        elif row.kind == "teacher":
            model, record = self._train_teacher(row)
        else:
            model, record = self._train_student(row)
        trained = time.time()
        sampler = self.eval_sampler(row)
        predictions, labels = predict_files(model, self.setting.eval_files, self.config.spec, k=row.k,
                                            sampler=sampler or "uniform", progress=self.verbose > 0)
        result = {
            "row": row.id, "seed": row.seed, "kind": row.kind, "k": row.k, "mode": row.mode,
            "losses": list(row.losses), "train_sampler": row.sampler if row.kind == "no_teacher" else (
                None if row.kind == "teacher" else self.train_sampler),
            "eval_sampler": sampler,
            "eval": score(predictions, labels, self.config.spec.num_classes),
            "best_val_gap": record.get("best_val_gap"), "epochs_run": record.get("epochs_run"),
            "fingerprint": self.fingerprint,
            "seconds": round(_train_seconds(record, trained - started) + time.time() - trained, 1),
            "finished_at": utc_now(),
        }
        result.update({k: record[k] for k in ("weights", "weights_sha256", "loss_weights", "head", "embedding_size")
                       if k in record})
        artifacts.atomic_write_json(self.row_dir(row) / "row.json", result)
        return result

    def run(self, patterns: str | None = None, *, max_rows: int | None = None,
            results_dir: str | os.PathLike | None = None) -> dict:
        """Runs the planned rows in order (re-planning after each, so headline seeds follow);
        writes the results JSON and Markdown after every row. Returns the results document."""
        ran = 0
        while True:
            todo = [r for r in self.planned(patterns) if self.finished(r) is None]
            if not todo or (max_rows is not None and ran >= max_rows):
                break
            self.run_row(todo[0])
            ran += 1
            self.write(results_dir)
        return self.write(results_dir)

    # ------------------------------------------------------------ results
    @property
    def results_name(self) -> str:
        """Stem of the results files: ``reproduce_`` + the config file's stem
        (``reproduce_netvlad.audioset``, ``reproduce_netvlad.audioset.v1``), so that two
        recipes of one family never share a results file; ``<family>.<dataset>`` without a file."""
        if self.config.path:
            return "reproduce_" + pathlib.Path(self.config.path).name.removesuffix(".yaml").removesuffix(".yml").removesuffix(".json")
        return f"reproduce_{self.config.family}.{self.config.dataset}"

    def results(self) -> dict:
        rows = [rec for r in self.all_rows() if (rec := self.finished(r))]
        summary = summarize(rows)
        widths = {r["row"]: r.get("embedding_size") for r in rows}
        for entry in summary:
            entry["cost"] = self.row_cost(entry["k"], widths.get(entry["row"]))
        remaining = [r.key for r in self.all_rows() if self.finished(r) is None]
        return {
            "config": self.config.path, "family": self.config.family, "dataset": self.config.dataset,
            "ks": list(self.ks), "seeds": self.seeds, "fingerprint": self.fingerprint,
            "training": dict(self.config.training), "epochs_override": self.epochs,
            "distillation": dict(self.config.distillation), "eval_files": len(self.setting.eval_files),
            "validation": self.setting.validation_note(), "teacher_weights": self.teacher_weights,
            "machine": machine(), "command": self.command, "rows": rows, "summary": summary,
            "encoder": self.row_cost.encoder_name,
            "remaining": remaining, "complete": not remaining, "in_progress": self.in_progress(),
            "train_seconds": round(sum(r["seconds"] for r in rows), 1), "written_at": utc_now(),
        }

    def in_progress(self) -> list[dict[str, Any]]:
        """Started, unfinished rows: epochs done (their BackupAndRestore state) and best val GAP@20 so far."""
        out = []
        for row in self.all_rows():
            run_dir = self.row_dir(row) / "run"
            state = run_dir / "backup" / "training_metadata.json"
            if self.finished(row) is not None or not state.is_file():
                continue
            best = run_dir / "best.weights.json"
            out.append({"row": row.key, "epochs_done": int(artifacts.read_json(state).get("epoch", 0)),
                        "best_val_gap": artifacts.read_json(best)["score"] if best.is_file() else None})
        return out

    def all_rows(self) -> list[Row]:
        """The whole grid, headline seeds included as far as they are known, and every other
        seed that finished (a row that was the headline when its seeds ran keeps them when a
        later row takes its place)."""
        rows = self.planned(None)
        seeded = [r.with_seed(s) for r in grid(self.config.family, self.ks) for s in range(1, self.seeds)]
        return rows + [r for r in seeded if r not in rows and self.finished(r) is not None]

    def write(self, results_dir: str | os.PathLike | None = None) -> dict:
        """Writes ``reproduce.json`` and ``reproduce.md`` in the work dir (and, with
        `results_dir`, as ``reproduce_<config>.json/.md`` there too, `results_name`)."""
        doc = self.results()
        targets = [(self.work_dir, "reproduce")]
        if results_dir is not None:
            targets.append((pathlib.Path(results_dir), self.results_name))
        for folder, stem in targets:
            folder.mkdir(parents=True, exist_ok=True)
            artifacts.atomic_write_json(folder / f"{stem}.json", doc)
            (folder / f"{stem}.md").write_text(markdown(doc), encoding="utf-8")
        return doc


def _train_seconds(record: dict, this_process: float) -> float:
    """A row's training time: every epoch's, across restarts, where the stage recorded it
    (``train_seconds``); otherwise the time this process spent on it."""
    return float(record["train_seconds"]) if record.get("train_seconds") else this_process

