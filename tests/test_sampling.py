import numpy as np
import pytest
import tensorflow as tf

from kdzoo import sampling
from kdzoo.sampling import SAMPLERS, sample_frames, sample_indices, sample_indices_numpy

pytestmark = pytest.mark.unit

DETERMINISTIC = [m for m in SAMPLERS if m != "random"]
LENGTHS = np.arange(0, 41, dtype=np.int32)


@pytest.mark.parametrize("method", DETERMINISTIC)
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 7, 10, 16])
def test_deterministic_matches_numpy_reference(method, k):
    idx = sample_indices(tf.constant(LENGTHS), k, method).numpy()
    assert idx.shape == (len(LENGTHS), k) and idx.dtype == np.int32
    for L, row in zip(LENGTHS, idx):
        ref = sample_indices_numpy(int(L), k, method)
        np.testing.assert_array_equal(row, ref, err_msg=f"{method} L={L} k={k}")
        assert row.min() >= 0 and row.max() <= max(L - 1, 0)
        assert np.all(np.diff(row) >= 0), "indices are sorted"
        if L >= k:
            assert len(set(row.tolist())) == k, "k distinct frames when L >= k"
        elif L > 0:
            assert set(row.tolist()) == set(range(L)), "short video: every frame used"


def test_uniform_formula_and_examples():
    np.testing.assert_array_equal(sample_indices([10], 2).numpy(), [[2, 7]])
    for L in range(1, 60):
        for k in range(1, 12):
            expected = [int(np.floor((i + 0.5) * L / k)) for i in range(k)]
            np.testing.assert_array_equal(sample_indices_numpy(L, k, "uniform"), expected)
    np.testing.assert_array_equal(sample_indices([3], 5, "first").numpy(), [[0, 0, 1, 2, 2]])


def test_reference_methods_by_hand():
    ref = sample_indices_numpy
    np.testing.assert_array_equal(ref(10, 3, "first"), [0, 1, 2])
    np.testing.assert_array_equal(ref(10, 3, "last"), [7, 8, 9])
    np.testing.assert_array_equal(ref(10, 3, "middle"), [3, 4, 5])
    np.testing.assert_array_equal(ref(10, 3, "first_middle_last"), [0, 4, 9])
    np.testing.assert_array_equal(ref(20, 5, "first_middle_last"), [0, 1, 9, 10, 19])
    # runs never overlap, even when L == k
    np.testing.assert_array_equal(ref(4, 4, "first_middle_last"), [0, 1, 2, 3])
    np.testing.assert_array_equal(ref(1, 3, "last"), [0, 0, 0])
    np.testing.assert_array_equal(ref(0, 3, "middle"), [0, 0, 0])


def test_empty_video_mask_zero():
    frames = tf.random.uniform([2, 5, 3])
    mask = tf.constant([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]], tf.float32)
    for method in SAMPLERS:
        fk, mk = sample_frames(frames, mask, 4, method)
        np.testing.assert_array_equal(mk.numpy(), [[1] * 4, [0] * 4])
        assert sample_indices([0], 4, method).numpy().tolist() == [[0, 0, 0, 0]]


def test_random_distinct_sorted_in_range():
    lengths = np.repeat(np.arange(0, 31, dtype=np.int32), 20)
    for k in (1, 2, 5, 10):
        idx = sample_indices(lengths, k, "random", seed=1, step=2).numpy()
        for L, row in zip(lengths, idx):
            assert row.min() >= 0 and row.max() <= max(L - 1, 0)
            assert np.all(np.diff(row) >= 0)
            if L >= k:
                assert len(set(row.tolist())) == k
            else:
                np.testing.assert_array_equal(row, sample_indices_numpy(int(L), k, "uniform"))


def test_random_seeding():
    lengths = tf.constant(np.full(64, 50, np.int32))
    a = sample_indices(lengths, 4, "random", seed=3, step=4).numpy()
    b = sample_indices(lengths, 4, "random", seed=3, step=tf.constant(4, tf.int64)).numpy()
    c = sample_indices(lengths, 4, "random", seed=3, step=5).numpy()
    d = sample_indices(lengths, 4, "random", seed=4, step=4).numpy()
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d)
    # inference (no seed, no step) is deterministic: (DEFAULT_SEED, 0)
    e = sample_indices(lengths, 4, "random").numpy()
    np.testing.assert_array_equal(e, sample_indices(lengths, 4, "random", seed=sampling.DEFAULT_SEED, step=0).numpy())
    np.testing.assert_array_equal(e, sample_indices(lengths, 4, "random").numpy())


def test_base_seed_rule():
    assert sampling.base_seed(5) == 5 and sampling.base_seed(5, fresh=True) == 5
    assert sampling.base_seed() == sampling.DEFAULT_SEED
    fresh = {sampling.base_seed(fresh=True) for _ in range(4)}
    assert len(fresh) == 4 and all(0 <= s < 2**63 for s in fresh)
    with pytest.raises(ValueError, match="step must be an integer scalar"):
        sample_indices([5], 2, "random", step=tf.constant([1, 2]))


def test_random_uniform_coverage():
    n, L, k = 4000, 10, 2
    idx = sample_indices(tf.fill([n], L), k, "random", seed=7, step=7).numpy()
    counts = np.bincount(idx.ravel(), minlength=L)
    expected = n * k / L
    assert np.all(np.abs(counts - expected) < 0.15 * expected), counts
    pairs = np.bincount(idx[:, 0] * L + idx[:, 1], minlength=L * L).reshape(L, L)
    upper = pairs[np.triu_indices(L, 1)]
    assert upper.min() > 0.4 * n / 45 and upper.max() < 1.6 * n / 45
    assert pairs[np.tril_indices(L)].sum() == 0


def test_numpy_random_reference():
    rng = np.random.default_rng(0)
    for _ in range(50):
        row = sample_indices_numpy(12, 4, "random", rng=rng)
        assert len(set(row.tolist())) == 4 and np.all(np.diff(row) > 0) and row.max() < 12
    np.testing.assert_array_equal(sample_indices_numpy(12, 4, "random", rng=5),
                                  sample_indices_numpy(12, 4, "random", rng=5))


def test_inside_tf_function_unknown_batch():
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int64)])
    def f(lengths, step):
        return {m: sample_indices(lengths, 3, m, seed=1, step=step) for m in SAMPLERS}

    @tf.function(input_signature=[tf.TensorSpec([None, None, 2]), tf.TensorSpec([None, None])])
    def g(frames, mask):
        return sample_frames(frames, mask, 3, "random", step=tf.constant(2, tf.int64))

    for n in (1, 5):
        lengths = tf.constant(np.arange(n, dtype=np.int32) * 3)
        out = f(lengths, tf.constant(1, tf.int64))
        for m in DETERMINISTIC:
            ref = np.stack([sample_indices_numpy(int(L), 3, m) for L in lengths.numpy()])
            np.testing.assert_array_equal(out[m].numpy(), ref)
        assert out["random"].shape == (n, 3)
        fk, mk = g(tf.zeros([n, 7, 2]), tf.ones([n, 7]))
        assert fk.shape == (n, 3, 2) and mk.shape == (n, 3)


def test_sample_frames_gathers():
    B, T, D = 3, 8, 2
    frames = np.zeros([B, T, D], np.float32)
    for b in range(B):
        for t in range(T):
            frames[b, t] = [b * 100 + t, -t]
    lengths = [8, 5, 2]
    mask = np.array([[1] * L + [0] * (T - L) for L in lengths], np.float32)
    for method in SAMPLERS:
        fk, mk = sample_frames(frames, mask, 4, method, seed=0, step=1)
        assert fk.shape == (B, 4, D) and mk.dtype == tf.float32
        np.testing.assert_array_equal(mk.numpy(), np.ones([B, 4]))
        for b, L in enumerate(lengths):
            t = fk.numpy()[b, :, 0] - b * 100
            assert np.all((t >= 0) & (t < L))
            if method != "random":
                np.testing.assert_array_equal(t, sample_indices_numpy(L, 4, method))


@pytest.mark.parametrize("bad_k", [0, -1, 2.0, "2", True, None])
def test_bad_k(bad_k):
    with pytest.raises(ValueError, match="k must be a positive int"):
        sample_indices([5], bad_k)
    with pytest.raises(ValueError, match="k must be a positive int"):
        sample_indices_numpy(5, bad_k, "uniform")


def test_unknown_method():
    with pytest.raises(ValueError, match=r"Unknown sampler 'foo'\. Expected one of uniform, random"):
        sample_indices([5], 2, "foo")
    with pytest.raises(ValueError, match="Unknown sampler 'foo'"):
        sample_frames(tf.zeros([1, 5, 2]), tf.ones([1, 5]), 2, "foo")
    with pytest.raises(ValueError, match="Unknown sampler"):
        sample_indices_numpy(5, 2, "foo")
    assert sampling.SAMPLERS == ("uniform", "random", "first", "middle", "last", "first_middle_last")


@pytest.mark.parametrize("method", SAMPLERS)
def test_k_as_a_tensor_matches_python_k(method):
    """A k chosen at run time (one traced function for every k) picks the same frames."""
    @tf.function(input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([], tf.int32)])
    def f(lengths, k):
        return sample_indices(lengths, k, method, seed=3, step=1)

    for k in (1, 2, 3, 5, 7):
        got = f(tf.constant(LENGTHS), tf.constant(k)).numpy()
        np.testing.assert_array_equal(got, sample_indices(LENGTHS, k, method, seed=3, step=1).numpy())
    with pytest.raises(tf.errors.InvalidArgumentError, match="k must be positive"):
        f(tf.constant(LENGTHS), tf.constant(0))


def test_k_none_is_every_frame():
    frames, mask = tf.random.uniform([2, 5, 3]), tf.constant([[1, 1, 0, 0, 0], [1] * 5], tf.float32)
    fk, mk = sample_frames(frames, mask, None)
    np.testing.assert_array_equal(fk.numpy(), frames.numpy())
    np.testing.assert_array_equal(mk.numpy(), mask.numpy())
