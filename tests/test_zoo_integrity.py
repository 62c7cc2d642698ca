"""Tamper-proof zoo weights: a modified, truncated or mis-pinned weights file is refused, nothing loads."""

import json
import pathlib
import tokenize

import keras
import numpy as np
import pytest

from kdzoo.zoo import Registry, WeightsIntegrityError, artifacts
from kdzoo.zoo.config import ZooConfig
from records import tiny_zoo_yaml

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "kdzoo"
NAME = "netvlad_student_k2.audioset"
ZOO_YAML = tiny_zoo_yaml()


@pytest.fixture
def registry(tmp_path):
    configs, pretrained = tmp_path / "configs", tmp_path / "pretrained"
    configs.mkdir()
    (configs / "netvlad.audioset.yaml").write_text(ZOO_YAML)
    config = ZooConfig.from_file(configs / "netvlad.audioset.yaml")
    model_config = config.model_config("student", 2)
    from kdzoo.models import build_model

    keras.utils.set_random_seed(7)
    model = build_model(model_config)
    meta = artifacts.write_entry(pretrained / NAME, model, model_config, {"name": NAME, "role": "student"})
    reg = Registry(config_dir=configs, pretrained_dir=pretrained)
    reg.reference_weights = [w.copy() for w in model.get_weights()]
    reg.entry_dir = pretrained / NAME
    reg.meta = meta
    return reg


@pytest.fixture
def load_calls(monkeypatch):
    """Records every keras load_weights call, to check that a refused file is never read."""
    calls = []
    original = keras.Model.load_weights

    def spy(self, *args, **kwargs):
        calls.append(args[0] if args else kwargs)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(keras.Model, "load_weights", spy)
    return calls


def test_entry_loads_and_matches_written_weights(registry, load_calls):
    assert registry.entries[NAME].has_weights
    model = registry.load(NAME, weights="pretrained")
    assert len(load_calls) == 1
    for got, want in zip(model.get_weights(), registry.reference_weights):
        np.testing.assert_array_equal(got, want)
    meta = json.loads((registry.entry_dir / artifacts.METADATA_FILE).read_text())
    assert meta["sha256"] == artifacts.sha256_of(registry.entry_dir / artifacts.WEIGHTS_FILE)
    assert meta["weights_bytes"] == (registry.entry_dir / artifacts.WEIGHTS_FILE).stat().st_size


@pytest.mark.parametrize("where", [0.0, 0.01, 0.25, 0.5, 0.75, 0.999])
@pytest.mark.parametrize("bit", [0, 7])
def test_bit_flip_in_weights_is_refused(registry, load_calls, where, bit):
    path = registry.entry_dir / artifacts.WEIGHTS_FILE
    data = bytearray(path.read_bytes())
    offset = min(int(where * len(data)), len(data) - 1)
    data[offset] ^= 1 << bit
    path.write_bytes(bytes(data))
    for weights in ("pretrained", "default"):
        with pytest.raises(WeightsIntegrityError, match=rf"Refusing to load .*{artifacts.WEIGHTS_FILE}: its sha256"):
            registry.load(NAME, weights=weights)
    assert load_calls == []  # nothing was loaded


@pytest.mark.parametrize("keep", [0, 1, 0.5, -1])
def test_truncated_weights_are_refused(registry, load_calls, keep):
    path = registry.entry_dir / artifacts.WEIGHTS_FILE
    data = path.read_bytes()
    n = int(keep * len(data)) if isinstance(keep, float) else (len(data) - 1 if keep == -1 else keep)
    path.write_bytes(data[:n])
    with pytest.raises(WeightsIntegrityError, match="corrupt, truncated or was modified"):
        registry.load(NAME, weights="pretrained")
    assert load_calls == []


def test_appended_bytes_are_refused(registry, load_calls):
    path = registry.entry_dir / artifacts.WEIGHTS_FILE
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(WeightsIntegrityError):
        registry.load(NAME, weights="pretrained")
    assert load_calls == []


def test_metadata_sha_mismatch_is_refused(registry, load_calls):
    meta_path = registry.entry_dir / artifacts.METADATA_FILE
    meta = json.loads(meta_path.read_text())
    meta["sha256"] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(WeightsIntegrityError, match=f"registry pins {'0' * 64}"):
        registry.load(NAME, weights="pretrained")
    assert load_calls == []


def test_weights_swapped_for_another_valid_file_are_refused(registry, load_calls, tmp_path):
    """A well-formed HDF5 file with other values (a 'valid' tamper) fails the pin just the same."""
    model = registry.load(NAME, weights=None)
    model.set_weights([w + 1.0 for w in model.get_weights()])
    load_calls.clear()
    artifacts.atomic_save_weights(model, registry.entry_dir / artifacts.WEIGHTS_FILE)
    with pytest.raises(WeightsIntegrityError):
        registry.load(NAME, weights="pretrained")
    assert load_calls == []


def test_verify_weights_directly(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"abc")
    artifacts.verify_weights(path, artifacts.sha256_of(path))
    with pytest.raises(WeightsIntegrityError):
        artifacts.verify_weights(path, artifacts.sha256_of(path)[::-1])


# ----------------------------------------------------------------------------- no unsafe deserialisation

BANNED_NAMES = {"pickle", "cPickle", "dill", "marshal", "shelve", "cloudpickle"}
BANNED_CALLS = {"eval", "exec"}


def _code_tokens(path):
    """(line, token) of the code of a Python file, without comments and strings."""
    with open(path, "rb") as f:
        toks = [t for t in tokenize.tokenize(f.readline)
                if t.type not in (tokenize.COMMENT, tokenize.STRING, tokenize.NL, tokenize.NEWLINE,
                                  tokenize.INDENT, tokenize.DEDENT, tokenize.ENCODING)]
    return toks


def _findings(path):
    toks = _code_tokens(path)
    out = []
    for i, t in enumerate(toks):
        prev = toks[i - 1].string if i else ""
        nxt = toks[i + 1].string if i + 1 < len(toks) else ""
        if t.type == tokenize.NAME and t.string in BANNED_NAMES:
            out.append(f"{path}:{t.start[0]}: {t.string}")
        if t.type == tokenize.NAME and t.string in BANNED_CALLS and nxt == "(" and prev != "." and prev != "def":
            out.append(f"{path}:{t.start[0]}: {t.string}(")
        if t.string == "safe_mode" and nxt == "=" and i + 2 < len(toks) and toks[i + 2].string == "False":
            out.append(f"{path}:{t.start[0]}: safe_mode=False")
        if t.string == "allow_pickle" and nxt == "=" and i + 2 < len(toks) and toks[i + 2].string == "True":
            out.append(f"{path}:{t.start[0]}: allow_pickle=True")
        if t.string == "load" and prev == "." and i >= 2 and toks[i - 2].string == "yaml":
            out.append(f"{path}:{t.start[0]}: yaml.load (use yaml.safe_load)")
    return out


def test_scanner_catches_the_patterns(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import pickle\nx = eval('1')\nexec('y=1')\nimport marshal\n"
                   "keras.saving.load_model(p, safe_mode=False)\nyaml.load(f)\nnp.load(p, allow_pickle=True)\n"
                   "# pickle in a comment is fine\ns = 'eval(1)'\nmodel.evaluate(x)\ndef cmd_eval(a): pass\n")
    found = _findings(bad)
    assert len(found) == 7, found


def test_package_has_no_unsafe_deserialisation():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 10
    findings = [f for path in files for f in _findings(path)]
    assert findings == [], "\n".join(findings)
    # The .keras loading path keeps Keras' safe mode on.
    source = (PACKAGE / "zoo" / "registry.py").read_text()
    assert "safe_mode=True" in source
