"""``kdzoo train`` and ``kdzoo distill``: resumable training from a zoo config."""

from __future__ import annotations

import argparse
import os

from kdzoo.cli._common import add_progress_argument


def add_training_arguments(p: argparse.ArgumentParser) -> None:
    """The arguments every config-driven training command takes (train, distill, tune)."""
    p.add_argument("config", help="a zoo config YAML, e.g. zoo_configs/netvlad.audioset.yaml")
    p.add_argument("--data-dir", default=os.environ.get("KDZOO_DATA_DIR"),
                   help="folder or gs:// URL the config's data globs are relative to (default: $KDZOO_DATA_DIR)")
    add_progress_argument(p)


def add_parser(sub, parent) -> None:
    p = sub.add_parser("train", parents=[parent],
                       help="train a zoo config's teacher, students and baselines; write zoo entries")
    add_training_arguments(p)
    p.add_argument("--work-dir", default="runs", help="checkpoints, TensorBoard logs and .keras models")
    p.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    p.add_argument("--out", default="pretrained", help="where the zoo entries are written")
    p.add_argument("--k", type=int, nargs="+", default=None, help="a subset of the config's students' k")
    p.add_argument("--no-baselines", action="store_true", help="skip the no-teacher students")
    p.add_argument("--no-elastic", action="store_true", help="skip the config's elastic student")
    p.add_argument("--teacher-only", action="store_true",
                   help="train (or, with --teacher-weights, re-evaluate) the teacher and write its entry alone")
    p.add_argument("--teacher-weights", default=None, metavar="ENTRY|FILE",
                   help="reuse a trained teacher of this config (a zoo entry folder such as "
                        "pretrained/netvlad_teacher.audioset, or a .weights.h5) instead of training it")
    p.set_defaults(func=run_train)

    p = sub.add_parser("distill", parents=[parent], help="train a teacher, then distil one k-frame student (resumable)")
    add_training_arguments(p)
    p.add_argument("--work-dir", default="runs", help="checkpoints, TensorBoard logs and .keras models")
    p.add_argument("--epochs", type=int, default=None, help="override the config's epochs")
    p.add_argument("--k", type=int, default=None, help="the student's k (default: the config's first)")
    p.add_argument("--strategy", default="default", choices=("default", "mirrored", "multiworker"),
                   help="default: one device (Keras fit); mirrored: every local GPU/CPU device; "
                        "multiworker: the cluster in TF_CONFIG (README: several GPUs or machines)")
    p.set_defaults(func=run_distill)


def run_train(args: argparse.Namespace) -> int:
    from kdzoo.training import train_zoo_config
    from kdzoo.zoo.config import ZooConfig

    config = ZooConfig.from_file(args.config)
    if args.teacher_only and args.k:
        raise ValueError("--teacher-only trains no students; leave out --k.")
    written = train_zoo_config(
        config, args.data_dir, out_dir=args.out, work_dir=args.work_dir, ks=() if args.teacher_only else args.k,
        baselines=not args.no_baselines, train_elastic=not (args.no_elastic or args.teacher_only), epochs=args.epochs,
        command=args.command_line, verbose=args.progress, teacher_weights=args.teacher_weights,
    )
    for name, meta in written.items():
        ev = meta["metrics"]["eval"]
        print(f"{name}: eval GAP@20 {ev['gap']:.4f}  mAP {ev['map']:.4f}  Hit@1 {ev['hit_at_one']:.4f}")
    print(f"zoo entries: {args.out}; .keras models: {os.path.join(args.work_dir, 'models')}")
    return 0


def run_distill(args: argparse.Namespace) -> int:
    from kdzoo.distribute.strategy import make_strategy

    strategy = make_strategy(args.strategy)  # first: the multi-worker strategy must precede every other op
    from kdzoo.training import TrainingData, keras_model_path, train_student, train_teacher
    from kdzoo.zoo.artifacts import atomic_save_model
    from kdzoo.zoo.config import ZooConfig

    config = ZooConfig.from_file(args.config)
    k = args.k or config.ks[0]
    data = TrainingData.resolve(config, args.data_dir)  # listed and counted once for both stages
    teacher, t_record = train_teacher(config, args.data_dir, args.work_dir, epochs=args.epochs, verbose=args.progress,
                                      strategy=strategy, data=data)
    print(f"teacher: best validation GAP@20 {t_record['best_val_gap']}{_digest(t_record)}")
    student, s_record = train_student(
        config, k, teacher, args.data_dir, args.work_dir, epochs=args.epochs, verbose=args.progress,
        strategy=strategy, data=data,
    )
    print(f"student (k={k}): best validation GAP@20 {s_record['best_val_gap']}{_digest(s_record)}")
    from kdzoo.distribute import worker_info

    if strategy is None or worker_info(strategy).is_chief:  # one writer in a cluster
        for model, name in ((teacher, config.teacher_name(tagged=True)), (student, config.student_name(k, tagged=True))):
            path = keras_model_path(args.work_dir, name)
            atomic_save_model(model, path)
            print(f"{name}: {path}")
    print(f"runs, TensorBoard logs and checkpoints: {args.work_dir}")
    return 0


def _digest(record: dict) -> str:
    """The weights' digest of a distributed run: equal on every worker when replicas agree."""
    return f", weights sha256 {record['weights_sha256']}" if "weights_sha256" in record else ""
