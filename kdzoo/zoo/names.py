"""Zoo names: the one place that parses and formats ``<family>_<role>[_k<k>|_elastic][.<dataset>]``.

``netvlad_teacher.audioset``, ``netvlad_student_k2.audioset``, ``hrnn_student_k10`` (no
tag), ``netvlad_student_elastic.audioset`` (one set of weights for any k). The part
before the first dot is the architecture (``arch``), the part after it the tag: the
dataset, possibly with a variant suffix (``audioset-tuned`` for a student written by
`kdzoo tune`). Teachers carry neither ``_k`` nor ``_elastic``; students carry one.

    >>> format_name("netvlad", "student", k=2, dataset="audioset")
    'netvlad_student_k2.audioset'
    >>> parse_name("hrnn_teacher.yt8m")
    ZooName(family='hrnn', role='teacher', k=None, dataset='yt8m', elastic=False)
"""

from __future__ import annotations

import dataclasses
import re

ROLES = ("teacher", "student")

_NAME = re.compile(
    r"^(?P<family>[a-z][a-z0-9]*)_(?P<role>teacher|student)(?:_k(?P<k>[1-9][0-9]*)|(?P<elastic>_elastic))?"
    r"(?:\.(?P<dataset>[A-Za-z0-9][\w.-]*))?$"
)
FORMAT = "<family>_<role>[_k<k>|_elastic][.<dataset>]"


@dataclasses.dataclass(frozen=True)
class ZooName:
    """A parsed zoo name; ``str(name)`` formats it back."""

    family: str
    role: str
    k: int | None = None
    dataset: str | None = None
    elastic: bool = False

    def __post_init__(self):
        if not isinstance(self.family, str) or not re.fullmatch(r"[a-z][a-z0-9]*", self.family):
            raise ValueError(f"Expected a family name of lowercase letters and digits. Received: {self.family!r}")
        if self.role not in ROLES:
            raise ValueError(f"Expected role 'teacher' or 'student'. Received: role={self.role!r}")
        if self.elastic:
            if self.role != "student" or self.k is not None:
                raise ValueError(f"Only a student is elastic, and it has no fixed k. Received: {self!r}")
        elif self.role == "student":
            if isinstance(self.k, bool) or not isinstance(self.k, int) or self.k <= 0:
                raise ValueError(f"A student's name needs its frame count k > 0. Received: k={self.k!r}")
        elif self.k is not None:
            raise ValueError(f"A teacher's name carries no k (it sees every frame). Received: k={self.k!r}")
        if self.dataset is not None and not re.fullmatch(r"[A-Za-z0-9][\w.-]*", self.dataset):
            raise ValueError(f"Expected a dataset tag of letters, digits, '.', '_' or '-'. Received: {self.dataset!r}")

    @property
    def arch(self) -> str:
        """The untagged name: ``<family>_<role>[_k<k>|_elastic]``."""
        suffix = "_elastic" if self.elastic else (f"_k{self.k}" if self.k is not None else "")
        return f"{self.family}_{self.role}{suffix}"

    def with_dataset(self, dataset: str | None) -> "ZooName":
        return dataclasses.replace(self, dataset=dataset)

    def __str__(self) -> str:
        return self.arch + (f".{self.dataset}" if self.dataset else "")


def parse_name(name: str) -> ZooName:
    """Parses a zoo name; raises ValueError naming the expected format."""
    if not isinstance(name, str):
        raise TypeError(f"Expected a model name string. Received: {name!r}")
    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"{name!r} is not a zoo name. Expected {FORMAT}, e.g. netvlad_student_k2.audioset.")
    k = match["k"]
    return ZooName(match["family"], match["role"], None if k is None else int(k), match["dataset"],
                   elastic=match["elastic"] is not None)


def format_name(family: str, role: str, k: int | None = None, dataset: str | None = None,
                elastic: bool = False) -> str:
    """``<family>_<role>[_k<k>|_elastic][.<dataset>]`` (k for fixed-k students only)."""
    return str(ZooName(family, role, k, dataset, elastic))


def teacher_name(family: str, dataset: str | None = None) -> str:
    return format_name(family, "teacher", None, dataset)


def student_name(family: str, k: int, dataset: str | None = None) -> str:
    return format_name(family, "student", k, dataset)


def elastic_name(family: str, dataset: str | None = None) -> str:
    return format_name(family, "student", None, dataset, elastic=True)
