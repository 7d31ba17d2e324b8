"""Random number generation: a seedable ``Generator`` (NumPy PCG64) and the default one."""
import numpy as np

__all__ = ["Generator", "manual_seed", "seed", "initial_seed", "default_generator", "get_rng_state",
           "set_rng_state"]


class Generator:
    """A random number generator (``torch.Generator``); seeded runs are reproducible.

    Examples
    --------
    >>> import cygrad
    >>> g = cygrad.Generator().manual_seed(0)
    >>> a = cygrad.rand(2, generator=g)
    >>> a.shape
    cygrad.Size([2])
    """

    def __init__(self, device="cpu"):
        from ._tensor import check_device
        check_device(device)
        self._seed = int(np.random.SeedSequence().entropy % (2 ** 63))
        self._rng = np.random.Generator(np.random.PCG64(self._seed))

    def manual_seed(self, seed):
        """Reseed and return self."""
        seed = int(seed)
        self._seed = seed
        self._rng = np.random.Generator(np.random.PCG64(seed & (2 ** 64 - 1)))
        return self

    def seed(self):
        """Reseed from fresh entropy and return the seed."""
        s = int(np.random.SeedSequence().entropy % (2 ** 63))
        self.manual_seed(s)
        return s

    def initial_seed(self):
        """The seed last set."""
        return self._seed

    def get_state(self):
        """The generator state (a uint8 tensor-like array wrapped as Tensor)."""
        import pickle
        from ._tensor import Tensor
        return Tensor._make(np.frombuffer(pickle.dumps(self._rng.bit_generator.state), dtype=np.uint8).copy())

    def set_state(self, state):
        """Restore a state from ``get_state``."""
        import pickle
        data = state._data if hasattr(state, "_data") else np.asarray(state)
        st = pickle.loads(bytes(np.asarray(data, dtype=np.uint8)))
        if not isinstance(st, dict) or st.get("bit_generator") != "PCG64":
            raise RuntimeError("set_state: not a cygrad generator state")
        self._rng.bit_generator.state = st
        return self

    @property
    def device(self):
        from ._tensor import _CPU
        return _CPU


default_generator = Generator().manual_seed(np.random.SeedSequence().entropy % (2 ** 63))


def manual_seed(seed):
    """Seed the default generator; returns it.

    Examples
    --------
    >>> import cygrad
    >>> _ = cygrad.manual_seed(0); a = cygrad.randn(3)
    >>> _ = cygrad.manual_seed(0); b = cygrad.randn(3)
    >>> bool((a == b).all())
    True
    """
    return default_generator.manual_seed(seed)


def seed():
    """Seed the default generator from fresh entropy."""
    return default_generator.seed()


def initial_seed():
    """The default generator's seed."""
    return default_generator.initial_seed()


def get_rng_state():
    """The default generator's state."""
    return default_generator.get_state()


def set_rng_state(new_state):
    """Restore the default generator's state."""
    default_generator.set_state(new_state)


def rng(generator=None):
    """The NumPy Generator behind ``generator`` (or the default)."""
    return (generator or default_generator)._rng
