"""The model zoo registry: names, tags, resolution, loading.

Names are ``<family>_<role>[_k<k>|_elastic][.<dataset>]`` (parsed and formatted by
`kdzoo.zoo.names`): ``netvlad_teacher.audioset``,
``netvlad_student_k2.audioset``, ``hrnn_student_k10.yt8m``. An untagged name resolves to
the tag that has pretrained weights, else to the ``yt8m`` entry, else to the only tag.

The registry is built from the files in ``zoo_configs/`` (architectures) and
``pretrained/`` (weights and cards); nothing about the entries is repeated in code.
An installed kdzoo (wheel, sdist, ``pip install .``) carries both folders as package
data inside ``kdzoo/``; a source checkout or editable install reads them at the top of
the repository. ``$KDZOO_ZOO_CONFIGS`` and ``$KDZOO_PRETRAINED`` point elsewhere.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import functools
import os
import pathlib
import re
import warnings
from typing import Any

import keras

from kdzoo.models import build_model
from kdzoo.zoo import artifacts, names
from kdzoo.zoo.config import ZooConfig

_PACKAGE_DIR = pathlib.Path(__file__).resolve().parents[1]
_REPO_ROOT = _PACKAGE_DIR.parent
DEFAULT_TAG = "yt8m"


class UnknownModelError(KeyError):
    """A model name the zoo does not know; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class MissingWeightsError(FileNotFoundError):
    """An entry asked for with weights="pretrained" that has no pretrained weights."""


def _zoo_folder(name: str) -> pathlib.Path:
    """``kdzoo/<name>`` in an installed package, else ``<repository>/<name>``."""
    installed = _PACKAGE_DIR / name
    return installed if installed.is_dir() else _REPO_ROOT / name


def default_config_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("KDZOO_ZOO_CONFIGS") or _zoo_folder("zoo_configs"))


def default_pretrained_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("KDZOO_PRETRAINED") or _zoo_folder("pretrained"))


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One named model of the zoo."""

    arch: str  # e.g. "netvlad_student_k2"
    tag: str  # the dataset, e.g. "audioset"
    role: str  # "teacher" or "student"
    num_frames: int | None  # frames the model sees: a student's k, all for a teacher; None: elastic
    config: ZooConfig
    pretrained_dir: pathlib.Path
    elastic: bool = False  # one set of weights for any k (`<family>_student_elastic`)

    @property
    def name(self) -> str:
        return str(names.parse_name(self.arch).with_dataset(self.tag))

    @property
    def entry_dir(self) -> pathlib.Path:
        return self.pretrained_dir / self.name

    @property
    def has_weights(self) -> bool:
        return (self.entry_dir / artifacts.METADATA_FILE).is_file() and (
            self.entry_dir / artifacts.WEIGHTS_FILE
        ).is_file()

    def model_config(self, k: int | None = None) -> dict[str, Any]:
        """The build config: the trained entry's config.json if shipped, else from the zoo config.

        `k` fixes an elastic student's frame budget (None: any number of frames).
        """
        path = self.entry_dir / artifacts.CONFIG_FILE
        if self.has_weights and path.is_file():
            config = artifacts.read_json(path)
            if self.elastic:
                config["num_frames"] = k
            return config
        if self.elastic:
            return self.config.model_config("student", k, elastic=True)
        if self.role == "teacher":
            return self.config.model_config("teacher")
        return self.config.model_config("student", self.num_frames)

    def train_command(self) -> str:
        config_path = self.config.path or f"zoo_configs/{self.config.family}.{self.tag}.yaml"
        if not pathlib.Path(config_path).is_relative_to(_PACKAGE_DIR):  # installed: keep the full path
            try:
                config_path = str(pathlib.Path(config_path).relative_to(_REPO_ROOT))
            except ValueError:
                pass
        return f"kdzoo train {config_path} --data-dir PATH_OR_GS_URL_TO_YOUR_TFRECORDS"


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


class Registry:
    """All zoo entries found in a config folder and a pretrained folder."""

    def __init__(self, config_dir: str | os.PathLike, pretrained_dir: str | os.PathLike):
        self.config_dir = pathlib.Path(config_dir)
        self.pretrained_dir = pathlib.Path(pretrained_dir)
        self.entries: dict[str, ZooEntry] = {}
        for path in sorted(self.config_dir.glob("*.yaml")):
            config = ZooConfig.from_file(path)
            specs = [(config.teacher_name(), "teacher", config.spec.max_frames)]
            specs += [(config.student_name(k), "student", k) for k in config.ks]
            if config.elastic:
                specs.append((config.elastic_name(), "student", None))
            for arch, role, num_frames in specs:
                entry = ZooEntry(
                    arch, config.dataset, role, num_frames, config, self.pretrained_dir, elastic=num_frames is None
                )
                if entry.name in self.entries:
                    raise ValueError(f"Zoo entry {entry.name} is defined twice (second time in {path}).")
                self.entries[entry.name] = entry

    def list_models(self, pattern: str = "*", pretrained: bool | None = None) -> list[str]:
        """Full names matching a shell-style `pattern` (on the full or untagged name)."""
        out = []
        for name, entry in self.entries.items():
            if not (fnmatch.fnmatchcase(name, pattern) or fnmatch.fnmatchcase(entry.arch, pattern)):
                continue
            if pretrained is not None and entry.has_weights != pretrained:
                continue
            out.append(name)
        return sorted(out, key=_natural_key)

    def resolve(self, name: str) -> ZooEntry:
        """The entry a (possibly untagged) name stands for; raises `UnknownModelError`."""
        if not isinstance(name, str):
            raise TypeError(f"Expected a model name string. Received: {name!r}")
        if name in self.entries:
            return self.entries[name]
        candidates = [e for e in self.entries.values() if e.arch == name]
        if candidates:
            with_weights = [e for e in candidates if e.has_weights]
            if with_weights:
                return with_weights[0]
            by_tag = {e.tag: e for e in candidates}
            return by_tag.get(DEFAULT_TAG, candidates[0])
        universe = sorted(set(self.entries) | {e.arch for e in self.entries.values()})
        close = difflib.get_close_matches(name, universe, n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        try:
            parsed = names.parse_name(name)
        except ValueError as error:
            hint += f" ({error})"
        else:
            hint += self._elastic_hint(parsed)
        raise UnknownModelError(
            f"Unknown model name {name!r}.{hint} See kdzoo.list_models() for all {len(self.entries)} names."
        )

    def _elastic_hint(self, parsed: names.ZooName) -> str:
        """For a k-frame student the zoo lacks: the elastic student that serves that k."""
        if parsed.role != "student" or parsed.k is None:
            return ""
        for entry in self.entries.values():
            low, high = entry.config.elastic or (0, 0)
            if (entry.elastic and entry.config.family == parsed.family and low <= parsed.k <= high
                    and parsed.dataset in (None, entry.tag)):
                return f" For k = {parsed.k}, load the elastic student: kdzoo.load({entry.name!r}, k={parsed.k})."
        return ""

    def model_card(self, name: str) -> dict[str, Any]:
        entry = self.resolve(name)
        card: dict[str, Any] = {
            "name": entry.name,
            "family": entry.config.family,
            "role": entry.role,
            "num_frames": entry.num_frames,
            "dataset": entry.tag,
            "sampler": entry.config.sampler if entry.role == "student" else None,
            "config": entry.model_config(),
            "pretrained": entry.has_weights,
        }
        if entry.has_weights:
            card.update(artifacts.read_json(entry.entry_dir / artifacts.METADATA_FILE))
        else:
            card["train_command"] = entry.train_command()
        return card

    def load(self, name: str, weights: str | os.PathLike | None = "default", k: int | None = None) -> keras.Model:
        """Builds an entry's model and loads its weights (see `kdzoo.load`)."""
        entry = self.resolve(name)
        if k is not None and not entry.elastic and k != entry.num_frames:
            raise ValueError(
                f"{entry.name} is built for {entry.num_frames} frames; k={k} applies to elastic students "
                f"only (e.g. {names.elastic_name(entry.config.family, entry.tag)})."
            )
        model = build_model(entry.model_config(k))
        if weights is None:
            return model
        if weights in ("pretrained", "default"):
            if not entry.has_weights:
                why = (
                    f"{entry.name} has no pretrained weights: no {entry.tag} frame-level corpus "
                    "ships with kdzoo and the zoo never ships weights trained on invented data."
                    if entry.tag == DEFAULT_TAG
                    else f"{entry.name} has no pretrained weights in {entry.pretrained_dir}."
                )
                message = (
                    f"{why} Train the pair on your own TFRecords with:\n    {entry.train_command()}\n"
                    "or build it untrained with kdzoo.load(name, weights=None)."
                )
                if weights == "pretrained":
                    raise MissingWeightsError(message)
                warnings.warn(f"Returning an untrained model. {message}", stacklevel=3)
                return model
            metadata = artifacts.read_json(entry.entry_dir / artifacts.METADATA_FILE)
            path = entry.entry_dir / artifacts.WEIGHTS_FILE
            artifacts.verify_weights(path, metadata["sha256"])
            model.load_weights(path)
            return model
        return _load_user_weights(model, pathlib.Path(weights))


def load_model_file(path: str | os.PathLike) -> keras.Model:
    """A kdzoo model saved with ``model.save("x.keras")`` (``safe_mode`` on: no lambdas, no pickles)."""
    import kdzoo.models  # noqa: F401  (registers kdzoo's Keras classes for deserialisation)

    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Model file not found: {path}")
    if path.suffix != ".keras":
        raise ValueError(f"Expected a '.keras' model file. Received: {path}")
    return keras.saving.load_model(path, safe_mode=True)


def _load_user_weights(model: keras.Model, path: pathlib.Path) -> keras.Model:
    if not path.is_file():
        raise FileNotFoundError(f"Weights file not found: {path} (expected pretrained, default, none or a path)")
    if path.name.endswith(".keras"):
        loaded = load_model_file(path)
        expected = [tuple(w.shape) for w in model.weights]
        found = [tuple(w.shape) for w in loaded.weights]
        if expected != found:
            raise ValueError(
                f"{path} holds a different architecture than {model.name}: {len(found)} weights, "
                f"{sum(map(_size, found)):,} parameters, against {len(expected)} weights, "
                f"{sum(map(_size, expected)):,} parameters. To use your own model, pass the .keras "
                "file itself where a model name is expected (kdzoo.load(path), kdzoo eval PATH --spec ...)."
            )
        model.set_weights(loaded.get_weights())
        return model
    if not path.name.endswith(".weights.h5"):
        raise ValueError(f"Expected a '.weights.h5' or '.keras' file. Received: {path}")
    model.load_weights(path)
    return model


def _size(shape: tuple) -> int:
    n = 1
    for d in shape:
        n *= int(d)
    return n


@functools.lru_cache(maxsize=8)
def _registry_for(config_dir: str, pretrained_dir: str, stamp: tuple) -> Registry:
    return Registry(config_dir, pretrained_dir)


def get_registry() -> Registry:
    """The registry of the default folders (re-read when their contents change)."""
    config_dir, pretrained_dir = default_config_dir(), default_pretrained_dir()
    stamp = tuple(
        (str(p), p.stat().st_mtime_ns)
        for d in (config_dir, pretrained_dir)
        if d.is_dir()
        for p in sorted(d.rglob("*"))
        if p.is_file()
    )
    return _registry_for(str(config_dir), str(pretrained_dir), stamp)


def list_models(pattern: str = "*", pretrained: bool | None = None) -> list[str]:
    """Zoo names matching a shell-style pattern, e.g. ``list_models("netvlad*")``.

    Args:
        pattern: wildcard matched against full (``netvlad_teacher.audioset``) and
            untagged (``netvlad_teacher``) names.
        pretrained: True for entries with shipped weights only, False for those without.
    """
    return get_registry().list_models(pattern, pretrained)


def load(name: str | os.PathLike, weights: str | os.PathLike | None = "default", k: int | None = None,
         whole_video: bool = False) -> keras.Model:
    """Returns a zoo model by name, e.g. ``kdzoo.load("netvlad_student_k2.audioset")``.

    Args:
        name: a zoo name, tagged or not (see `list_models`), or the path of a model
            saved as ``.keras`` (then `weights` must stay ``"default"``).
        weights: ``"pretrained"``: the shipped weights, verified against their sha256
            (an entry without them raises `MissingWeightsError` with the command that
            trains it); ``"default"``: pretrained where shipped, else an untrained model
            with a warning; ``None``: untrained; a path: a ``.weights.h5`` or ``.keras`` file.
        k: fixes the frame budget of an elastic student (``*_student_elastic``), whose
            model otherwise takes any number of frames.
        whole_video: return a `kdzoo.whole_video.WholeVideoClassifier` that takes whole
            videos of any length and samples the student's k frames inside with the
            card's sampler (the same frames as `kdzoo eval` and `kdzoo export`); its
            ``.model`` is the bare student. A teacher gets every frame.
    """
    if str(name).endswith(".keras"):
        if weights != "default":
            raise ValueError(f"{name} is a .keras file: it holds its weights. Received weights={weights!r}.")
        model = load_model_file(name)
        if not whole_video:
            return model
        from kdzoo.models import frame_shape
        from kdzoo.whole_video import WholeVideoClassifier

        return WholeVideoClassifier(model, k=k or frame_shape(model)[0], name=f"{model.name}_whole_video")
    registry = get_registry()
    model = registry.load(name, weights, k=k)
    if not whole_video:
        return model
    from kdzoo.whole_video import WholeVideoClassifier

    entry = registry.resolve(name)
    frames = (k or entry.num_frames) if entry.role == "student" else None
    return WholeVideoClassifier(model, k=frames, sampler=entry.config.sampler, name=f"{model.name}_whole_video")


def load_pair(family: str, k: int, dataset: str | None = None, weights: str | None = "default"):
    """Returns ``(teacher, student)`` of a family for a student frame count k."""
    registry = get_registry()
    student = registry.resolve(names.student_name(family, k, dataset))
    teacher = registry.resolve(names.teacher_name(family, student.tag))
    return registry.load(teacher.name, weights), registry.load(student.name, weights)


def model_card(name: str) -> dict[str, Any]:
    """The card of an entry as a dict (config, and for trained entries the measured metrics)."""
    return get_registry().model_card(name)
