"""cygrad.utils.data against torch.utils.data (everything deterministic) and seeded shuffling."""
import math
import warnings
from collections import namedtuple

import numpy as np
import pytest

import cygrad
import cygrad.utils.data as CD

Point = namedtuple("Point", "x y")


@pytest.fixture
def TD(torch):
    import torch.utils.data as TD
    return TD


def norm(o):
    """A comparable, library-independent form of a (collated) batch."""
    if hasattr(o, "detach") and hasattr(o, "dtype"):
        return ("T", str(o.dtype).split(".")[-1], tuple(o.shape), o.detach().numpy().tolist())
    if isinstance(o, dict):
        return ("D", type(o).__name__, {k: norm(v) for k, v in o.items()})
    if isinstance(o, tuple) and hasattr(o, "_fields"):
        return ("N", type(o).__name__, [norm(v) for v in o])
    if isinstance(o, (list, tuple)):
        return (type(o).__name__, [norm(v) for v in o])
    return o


def same_error(fn_t, fn_c):
    with pytest.raises(Exception) as et:
        fn_t()
    with pytest.raises(Exception) as ec:
        fn_c()
    assert type(ec.value) is type(et.value)
    assert str(ec.value) == str(et.value)


class Squares:
    """A plain map-style dataset (not a Dataset subclass), like a list."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return {"i": i, "sq": float(i * i), "name": f"s{i}", "v": np.arange(3) + i}


def make_iterable(M, n):
    class Stream(M.IterableDataset):
        def __iter__(self):
            return iter([(i, float(i) / 2) for i in range(n)])

        def __len__(self):
            return n
    return Stream()


# ---- collation ---------------------------------------------------------------------------------------
COLLATE_CASES = [
    [1, 2, 3],
    [1.5, 2.5],
    [True, False],
    [np.float32(1), np.float32(2)],
    [np.int32(3), np.int32(4)],
    [np.float64(0.5), np.float64(1.5)],
    [np.array([1, 2]), np.array([3, 4])],
    [np.array([1.0, 2.0], dtype=np.float32)] * 2,
    [np.zeros((2, 3), dtype=np.float16), np.ones((2, 3), dtype=np.float16)],
    [{"x": 1, "y": "s"}, {"x": 2, "y": "t"}],
    [(1, 2.0), (3, 4.0)],
    [[1, 2], [3, 4]],
    [Point(1, 2.0), Point(3, 4.0)],
    ["a", "b"],
    [b"a", b"b"],
    [{"a": [np.array(1.5), 2], "b": {"c": ("u", 3.0)}}, {"a": [np.array(2.5), 4], "b": {"c": ("v", 5.0)}}],
]


@pytest.mark.parametrize("case", range(len(COLLATE_CASES)))
def test_default_collate_matches_torch(TD, case):
    batch = COLLATE_CASES[case]
    assert norm(CD.default_collate(batch)) == norm(TD.default_collate(batch))


def test_default_collate_tensors(TD, torch):
    rows = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    c = CD.default_collate([(cygrad.tensor(r), i) for i, r in enumerate(rows)])
    t = TD.default_collate([(torch.tensor(r), i) for i, r in enumerate(rows)])
    assert norm(c) == norm(t)
    assert c[0].dtype == cygrad.float32 and c[1].dtype == cygrad.int64


@pytest.mark.parametrize("batch", [[None, None], [object()], [np.array(["a"]), np.array(["b"])]])
def test_default_collate_errors_match_torch(TD, batch):
    same_error(lambda: TD.default_collate(batch), lambda: CD.default_collate(batch))


def test_default_collate_unequal_sequences(TD):
    batch = [[1, 2], [3]]
    same_error(lambda: TD.default_collate(batch), lambda: CD.default_collate(batch))


@pytest.mark.parametrize("data", [np.array([1, 2]), np.float32(3), 5, "s", (np.array([1.0]), 2),
                                  {"k": np.array([0, 1]), "n": [np.int64(3)]}, Point(np.array(0), 1)])
def test_default_convert_matches_torch(TD, data):
    assert norm(CD.default_convert(data)) == norm(TD.default_convert(data))


def test_collate_with_custom_map():
    fn_map = {**CD.default_collate_fn_map, int: lambda b, *, collate_fn_map: sum(b)}
    expected = [4, cygrad.tensor([2.0, 4.0], dtype=cygrad.float64)]
    assert norm(CD.collate([(1, 2.0), (3, 4.0)], collate_fn_map=fn_map)) == norm(expected)


# ---- datasets ----------------------------------------------------------------------------------------
def test_tensor_dataset(TD, torch):
    a = np.arange(12).reshape(6, 2)
    b = np.arange(6) * 0.5
    c = CD.TensorDataset(cygrad.tensor(a), cygrad.tensor(b))
    t = TD.TensorDataset(torch.tensor(a), torch.tensor(b))
    assert len(c) == len(t) == 6
    for i in (0, 3, -1, slice(1, 4)):
        assert norm(c[i]) == norm(t[i])
    same_error(lambda: TD.TensorDataset(torch.zeros(3), torch.zeros(4)),
               lambda: CD.TensorDataset(cygrad.zeros(3), cygrad.zeros(4)))


def test_concat_and_subset(TD):
    parts = [list(range(3)), list(range(10, 15)), list(range(20, 22))]
    c, t = CD.ConcatDataset(parts), TD.ConcatDataset(parts)
    assert len(c) == len(t) and c.cumulative_sizes == t.cumulative_sizes
    assert [c[i] for i in range(-len(c), len(c))] == [t[i] for i in range(-len(t), len(t))]
    same_error(lambda: t[-11], lambda: c[-11])
    same_error(lambda: TD.ConcatDataset([]), lambda: CD.ConcatDataset([]))
    same_error(lambda: TD.ConcatDataset([make_iterable(TD, 2)]), lambda: CD.ConcatDataset([make_iterable(CD, 2)]))
    s_c, s_t = CD.Subset(c, [9, 0, 4]), TD.Subset(t, [9, 0, 4])
    assert len(s_c) == 3 and [s_c[i] for i in range(3)] == [s_t[i] for i in range(3)]
    assert s_c.__getitems__([2, 0]) == s_t.__getitems__([2, 0])
    assert len(CD.TensorDataset(cygrad.zeros(2)) + CD.TensorDataset(cygrad.zeros(3))) == 5


def test_subset_subclass_must_override_getitems():
    class Bad(CD.Subset):
        def __getitem__(self, i):
            return 0
    with pytest.raises(NotImplementedError, match="overrides __getitem__ but not __getitems__"):
        Bad([1, 2], [0])


def test_chain_and_iterable():
    a, b = make_iterable(CD, 2), make_iterable(CD, 3)
    assert list(a + b) == list(a) + list(b)
    assert len(a + b) == 5
    with pytest.raises(NotImplementedError):
        iter(CD.IterableDataset())
    with pytest.raises(NotImplementedError):
        CD.Dataset()[0]


@pytest.mark.parametrize("n", [1, 7, 10, 11, 100, 101])
@pytest.mark.parametrize("lengths", [[0.5, 0.5], [0.3, 0.3, 0.4], [0.1] * 10, [0.7, 0.2, 0.1], [1.0], [0.25] * 4])
def test_random_split_lengths_match_torch(TD, n, lengths):
    with warnings.catch_warnings(record=True) as wt:
        warnings.simplefilter("always")
        t = TD.random_split(range(n), lengths)
    with warnings.catch_warnings(record=True) as wc:
        warnings.simplefilter("always")
        c = CD.random_split(range(n), lengths, generator=cygrad.Generator().manual_seed(0))
    assert [len(s) for s in c] == [len(s) for s in t]
    assert [str(w.message) for w in wc] == [str(w.message) for w in wt]
    assert sorted(i for s in c for i in s) == list(range(n))


def test_random_split_ints_seed_and_errors(TD):
    split = lambda seed: [list(s) for s in CD.random_split(range(20), [5, 15],  # noqa: E731
                                                           generator=cygrad.Generator().manual_seed(seed))]
    assert split(3) == split(3)
    assert split(3) != split(4)
    assert [len(s) for s in split(3)] == [5, 15]
    cygrad.manual_seed(1)
    a = [list(s) for s in CD.random_split(range(20), [10, 10])]
    cygrad.manual_seed(1)
    assert a == [list(s) for s in CD.random_split(range(20), [10, 10])]
    same_error(lambda: TD.random_split(range(10), [3, 3]), lambda: CD.random_split(range(10), [3, 3]))
    same_error(lambda: TD.random_split(range(10), [1.5, -0.5]), lambda: CD.random_split(range(10), [1.5, -0.5]))


# ---- samplers ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n,bs,drop", [(10, 3, False), (10, 3, True), (9, 3, True), (2, 5, False), (2, 5, True),
                                       (0, 2, False)])
def test_batch_sampler_matches_torch(TD, n, bs, drop):
    c = CD.BatchSampler(CD.SequentialSampler(range(n)), bs, drop)
    t = TD.BatchSampler(TD.SequentialSampler(range(n)), bs, drop)
    assert list(c) == list(t) and len(c) == len(t)


@pytest.mark.parametrize("bs", [0, -1, 1.5, True, "2"])
def test_batch_sampler_errors(TD, bs):
    same_error(lambda: TD.BatchSampler(range(3), bs, False), lambda: CD.BatchSampler(range(3), bs, False))


def test_batch_sampler_drop_last_must_be_bool(TD):
    same_error(lambda: TD.BatchSampler(range(3), 2, 1), lambda: CD.BatchSampler(range(3), 2, 1))


def test_random_sampler_seeded():
    g = lambda s: cygrad.Generator().manual_seed(s)  # noqa: E731
    a = list(CD.RandomSampler(range(50), generator=g(0)))
    assert sorted(a) == list(range(50)) and a != list(range(50))
    assert a == list(CD.RandomSampler(range(50), generator=g(0)))
    assert a != list(CD.RandomSampler(range(50), generator=g(1)))
    s = CD.RandomSampler(range(50), generator=g(0))
    assert list(s) != list(s)  # the generator moves on: a new order each epoch
    long = list(CD.RandomSampler(range(5), num_samples=12, generator=g(2)))
    assert len(long) == 12 and sorted(long[:5]) == sorted(long[5:10]) == list(range(5))
    rep = list(CD.RandomSampler(range(5), replacement=True, num_samples=40, generator=g(2)))
    assert len(rep) == 40 and set(rep) <= set(range(5))
    cygrad.manual_seed(9)
    a = list(CD.RandomSampler(range(30)))
    cygrad.manual_seed(9)
    assert a == list(CD.RandomSampler(range(30)))


@pytest.mark.parametrize("kw", [dict(replacement=1), dict(num_samples=0), dict(num_samples=2.0)])
def test_random_sampler_errors(TD, kw):
    same_error(lambda: TD.RandomSampler(range(3), **kw), lambda: CD.RandomSampler(range(3), **kw))


def test_random_sampler_empty_dataset(TD):
    same_error(lambda: TD.RandomSampler([]), lambda: CD.RandomSampler([]))


def test_other_samplers(TD):
    g = cygrad.Generator().manual_seed(0)
    assert sorted(CD.SubsetRandomSampler([4, 8, 15], generator=g)) == [4, 8, 15]
    w = list(CD.WeightedRandomSampler([0.0, 2.0, 0.0, 1.0], 50, generator=g))
    assert len(w) == 50 and set(w) == {1, 3}
    assert sorted(CD.WeightedRandomSampler([1.0, 1.0, 1.0], 3, replacement=False, generator=g)) == [0, 1, 2]
    same_error(lambda: TD.WeightedRandomSampler([1.0], 0), lambda: CD.WeightedRandomSampler([1.0], 0))
    same_error(lambda: TD.WeightedRandomSampler([[1.0]], 2), lambda: CD.WeightedRandomSampler([[1.0]], 2))
    assert list(CD.SequentialSampler("abcd")) == [0, 1, 2, 3]


# ---- DataLoader --------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [0, 1, 9, 10, 11])
@pytest.mark.parametrize("bs", [1, 3, 10, 16])
@pytest.mark.parametrize("drop", [False, True])
def test_loader_sequential_batches_match_torch(TD, torch, n, bs, drop):
    x = np.arange(n * 2, dtype=np.float32).reshape(n, 2)
    y = np.arange(n)
    c = CD.DataLoader(CD.TensorDataset(cygrad.tensor(x), cygrad.tensor(y)), batch_size=bs, drop_last=drop)
    t = TD.DataLoader(TD.TensorDataset(torch.tensor(x), torch.tensor(y)), batch_size=bs, drop_last=drop)
    assert len(c) == len(t) == (n // bs if drop else math.ceil(n / bs))
    assert [norm(b) for b in c] == [norm(b) for b in t]


def test_loader_plain_dataset_and_no_batching(TD):
    ds = Squares(7)
    assert [norm(b) for b in CD.DataLoader(ds, batch_size=3)] == [norm(b) for b in TD.DataLoader(ds, batch_size=3)]
    c = CD.DataLoader(ds, batch_size=None)
    t = TD.DataLoader(ds, batch_size=None)
    assert len(c) == len(t) == 7
    assert [norm(b) for b in c] == [norm(b) for b in t]
    assert [norm(b) for b in CD.DataLoader(list(range(5)), batch_size=2)] == \
        [norm(b) for b in TD.DataLoader(list(range(5)), batch_size=2)]


def test_loader_custom_sampler_batch_sampler_collate(TD):
    ds = list(range(10, 20))
    order = [3, 1, 4, 1, 5, 9, 2, 6]
    assert [norm(b) for b in CD.DataLoader(ds, batch_size=3, sampler=order)] == \
        [norm(b) for b in TD.DataLoader(ds, batch_size=3, sampler=order)]
    batches = [[0, 1], [9], [4, 5, 6]]
    c = CD.DataLoader(ds, batch_sampler=batches)
    t = TD.DataLoader(ds, batch_sampler=batches)
    assert len(c) == len(t) == 3 and [norm(b) for b in c] == [norm(b) for b in t]
    assert list(CD.DataLoader(ds, batch_size=4, collate_fn=sum)) == [46, 62, 37]


def test_loader_uses_subset_getitems():
    calls = []

    class Base(CD.Dataset):
        def __len__(self):
            return 10

        def __getitem__(self, i):
            return i

        def __getitems__(self, idx):
            calls.append(list(idx))
            return list(idx)

    out = [b.tolist() for b in CD.DataLoader(CD.Subset(Base(), [9, 8, 7, 6]), batch_size=3)]
    assert out == [[9, 8, 7], [6]] and calls == [[9, 8, 7], [6]]


@pytest.mark.parametrize("bs,drop", [(2, False), (2, True), (3, False), (None, False), (10, False)])
def test_loader_iterable_dataset_matches_torch(TD, bs, drop):
    c = CD.DataLoader(make_iterable(CD, 7), batch_size=bs, drop_last=drop)
    t = TD.DataLoader(make_iterable(TD, 7), batch_size=bs, drop_last=drop)
    assert len(c) == len(t)
    assert [norm(b) for b in c] == [norm(b) for b in t]


def test_loader_shuffle_seeded():
    ds = CD.TensorDataset(cygrad.arange(40))

    def epoch(loader):
        return [i for (b,) in loader for i in b.tolist()]

    def loader(seed):
        return CD.DataLoader(ds, batch_size=6, shuffle=True, generator=cygrad.Generator().manual_seed(seed))

    a = epoch(loader(0))
    assert sorted(a) == list(range(40)) and a != list(range(40))
    assert a == epoch(loader(0))
    assert a != epoch(loader(1))
    l0 = loader(0)
    assert epoch(l0) != epoch(l0)  # reshuffled every epoch
    cygrad.manual_seed(5)
    b = epoch(CD.DataLoader(ds, batch_size=6, shuffle=True))
    cygrad.manual_seed(5)
    assert b == epoch(CD.DataLoader(ds, batch_size=6, shuffle=True))
    assert len(loader(0)) == 7 and len(CD.DataLoader(ds, batch_size=6, shuffle=True, drop_last=True)) == 6


def test_loader_num_workers_runs_in_process(TD):
    ds = Squares(5)
    assert [norm(b) for b in CD.DataLoader(ds, batch_size=2, num_workers=2)] == \
        [norm(b) for b in TD.DataLoader(ds, batch_size=2)]
    assert CD.get_worker_info() is None


ERROR_CASES = [
    dict(batch_size=0), dict(batch_size=-2), dict(batch_size=2.5), dict(shuffle=True, sampler=[0, 1]),
    dict(batch_sampler=[[0]], batch_size=2), dict(batch_sampler=[[0]], shuffle=True),
    dict(batch_sampler=[[0]], drop_last=True), dict(batch_sampler=[[0]], sampler=[0]),
    dict(batch_size=None, drop_last=True), dict(num_workers=-1), dict(timeout=-1.0), dict(prefetch_factor=2),
    dict(num_workers=2, prefetch_factor=-1), dict(persistent_workers=True), dict(drop_last=1),
    dict(multiprocessing_context="spawn"),
]


@pytest.mark.parametrize("kw", ERROR_CASES, ids=[str(k) for k in ERROR_CASES])
def test_loader_errors_match_torch(TD, kw):
    same_error(lambda: TD.DataLoader(list(range(4)), **kw), lambda: CD.DataLoader(list(range(4)), **kw))


@pytest.mark.parametrize("kw", [dict(shuffle=True), dict(sampler=[0]), dict(batch_sampler=[[0]])])
def test_loader_iterable_errors_match_torch(TD, kw):
    same_error(lambda: TD.DataLoader(make_iterable(TD, 3), **kw),
               lambda: CD.DataLoader(make_iterable(CD, 3), **kw))


def test_loader_attributes_frozen(TD):
    t, c = TD.DataLoader([1, 2]), CD.DataLoader([1, 2])
    for attr in ("batch_size", "sampler", "drop_last", "dataset"):
        same_error(lambda: setattr(t, attr, None), lambda: setattr(c, attr, None))
    c.collate_fn = list  # other attributes stay settable
    assert c.batch_size == 1 and c.drop_last is False and isinstance(c.sampler, CD.SequentialSampler)


def test_loader_with_checkpointed_training_step():
    """Smoke test: the two halves of this work together on a tiny regression."""
    from cygrad.utils.checkpoint import checkpoint
    cygrad.manual_seed(0)
    x = cygrad.randn(32, 4)
    y = x @ cygrad.tensor([[1.0], [-2.0], [0.5], [3.0]])
    model = cygrad.nn.Sequential(cygrad.nn.Linear(4, 16), cygrad.nn.GELU(), cygrad.nn.Linear(16, 1))
    opt = cygrad.optim.SGD(model.parameters(), lr=0.05)
    loader = CD.DataLoader(CD.TensorDataset(x, y), batch_size=8, shuffle=True,
                           generator=cygrad.Generator().manual_seed(0))
    losses = []
    for _ in range(30):
        for xb, yb in loader:
            loss = ((checkpoint(model, xb, use_reentrant=False) - yb) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


def test_tensor_dataset_batches_gather_like_per_sample_collate():
    """The DataLoader's one-gather path for TensorDataset (also inside Subsets) gives exactly
    what collating the samples one by one gives."""
    from cygrad.utils.data import DataLoader, Subset, TensorDataset, default_collate, random_split
    x = cygrad.randn(23, 3, 2)
    y = cygrad.arange(23)
    ds = TensorDataset(x, y)
    sub, _ = random_split(ds, [15, 8], generator=cygrad.Generator().manual_seed(3))
    nested = Subset(sub, [14, 0, 7, 7, 3])
    for d in (ds, sub, nested):
        loader = DataLoader(d, batch_size=4, shuffle=True, generator=cygrad.Generator().manual_seed(5))
        order = [list(b) for b in loader.batch_sampler]
        loader = DataLoader(d, batch_size=4, shuffle=True, generator=cygrad.Generator().manual_seed(5))
        batches = list(loader)
        assert len(batches) == len(order)
        for got, idx in zip(batches, order):
            want = default_collate([d[i] for i in idx])
            assert isinstance(got, list) and len(got) == 2
            for g, w in zip(got, want):
                assert g.dtype == w.dtype and g.shape == w.shape
                assert cygrad.equal(g, w)
