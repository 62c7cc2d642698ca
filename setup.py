"""Build script. The metadata is in setup.cfg; this maps the zoo into the package.

The zoo lives in the repository's top-level ``zoo_configs/`` and ``pretrained/`` folders
(the one copy, edited and trained in place). Wheels, sdists and ``pip install .`` carry
them as the package data folders ``kdzoo/zoo_configs`` and ``kdzoo/pretrained``, where
`kdzoo.zoo.registry` finds them; a source checkout or editable install reads the
top-level folders directly.
"""

from setuptools import find_packages, setup

ZOO_FOLDERS = {"kdzoo.zoo_configs": "zoo_configs", "kdzoo.pretrained": "pretrained"}

setup(
    packages=find_packages(include=["kdzoo", "kdzoo.*"]) + list(ZOO_FOLDERS),
    package_dir=ZOO_FOLDERS,
    package_data={"kdzoo.zoo_configs": ["*.yaml"], "kdzoo.pretrained": ["*/*.json", "*/*.h5"]},
)
