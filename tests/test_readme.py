"""The README's "Using it" snippets run as written."""

import pathlib
import re

import numpy as np
import pytest

import kdzoo

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def section_blocks(title: str) -> list[str]:
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    end = text.index("\n### ", start)  # up to the first subsection
    return re.findall(r"```python\n(.*?)```", text[start:end], re.S)


def test_using_it_snippets_run():
    if not {"netvlad_student_k2.audioset", "hrnn_student_k2.audioset"} <= set(kdzoo.list_models(pretrained=True)):
        pytest.skip("the README's models are not trained")
    blocks = section_blocks("Using it")
    assert len(blocks) == 2
    namespace = {}
    # The kdzoo.export(..., encoder="my_vggish.keras") line needs the reader's encoder file;
    # tests/test_end_to_end.py runs that export with an encoder saved as .keras.
    first = "\n".join(line for line in blocks[0].splitlines() if not line.startswith("kdzoo.export("))
    with pytest.warns(UserWarning, match="untrained"):  # netvlad_student_k10 has no weights
        exec(compile(first, "README.md", "exec"), namespace)
    exec(compile(blocks[1], "README.md", "exec"), namespace)
    probs = namespace["probs"]
    assert probs.shape == (3, 527) and np.all((probs >= 0) & (probs <= 1))
