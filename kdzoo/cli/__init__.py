"""The ``kdzoo`` command line.

One module per command (``kdzoo/cli/<command>.py``), each with ``add_parser(subparsers)``
that declares its arguments and sets ``func``. Nothing here imports TensorFlow: the
commands import what they need when they run, so ``kdzoo --help`` and
``kdzoo COMMAND --help`` answer at once.

By default TensorFlow's C++ log lines are silenced and a user error (unknown name,
missing file, bad data, bad argument) prints one line on stderr and exits with status 1;
``--verbose`` keeps the log lines and shows the traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
import traceback
import warnings
from collections.abc import Sequence

# The command modules, in the order `kdzoo --help` lists them. A new command is a new
# module here with an `add_parser(subparsers)` function.
COMMANDS = ("demo", "zoo", "train", "eval", "profile", "export", "tune", "reproduce")

EXIT_USER_ERROR = 1
EXIT_INTERRUPTED = 130


def _verbose_parent() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="show TensorFlow's log lines and full tracebacks")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parent = _verbose_parent()
    parser = argparse.ArgumentParser(
        prog="kdzoo", description="Efficient video classification by knowledge distillation.", parents=[parent]
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"kdzoo.cli.{name}").add_parser(sub, parent)
    return parser


def quiet_tensorflow() -> None:
    """Imports TensorFlow without its C++ log lines; call before anything imports it.

    ``TF_CPP_MIN_LOG_LEVEL=3`` silences TensorFlow's own logging, but absl/XLA write a few
    lines straight to file descriptor 2 while the library loads (before absl's logging is
    initialised, so no setting reaches them). They are captured during the import and
    shown only if the import fails.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import logging

    for name in ("tensorflow", "absl", "h5py"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "tensorflow" in sys.modules:
        return
    import tempfile

    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode(errors="replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    return f"warning: {message}\n"


def _user_error_types() -> tuple[type, ...]:
    """Exception types that mean the user asked for something wrong (no traceback shown)."""
    types: list[type] = [ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError, PermissionError]
    # Only modules already imported can have raised their errors: nothing is imported here.
    for module, names in (
        ("kdzoo.zoo.registry", ("UnknownModelError", "MissingWeightsError")),
        ("kdzoo.zoo.artifacts", ("WeightsIntegrityError",)),
        ("kdzoo.data.errors", ("DataError",)),
        ("yaml", ("YAMLError",)),
    ):
        loaded = sys.modules.get(module)
        types += [getattr(loaded, n) for n in names if loaded is not None and hasattr(loaded, n)]
    tf = sys.modules.get("tensorflow")
    if tf is not None:
        types += [tf.errors.NotFoundError, tf.errors.InvalidArgumentError]
    return tuple(types)


def _command_line(argv: Sequence[str] | None) -> str:
    args = list(sys.argv[1:] if argv is None else argv)
    return "kdzoo " + " ".join(shlex.quote(a) for a in args)


def main(argv: Sequence[str] | None = None) -> int:
    """Runs one command; returns the exit status (0 on success)."""
    args = build_parser().parse_args(argv)
    args.verbose = getattr(args, "verbose", False)
    args.command_line = _command_line(argv)
    if not args.verbose:
        quiet_tensorflow()
    showwarning = warnings.formatwarning
    if not args.verbose:
        warnings.formatwarning = _one_line_warning
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("kdzoo: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        if args.verbose or not isinstance(exc, _user_error_types()):
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        print(f"kdzoo {args.command}: error: {message} (--verbose shows the traceback)", file=sys.stderr)
        return EXIT_USER_ERROR
    finally:
        warnings.formatwarning = showwarning


if __name__ == "__main__":
    sys.exit(main())
