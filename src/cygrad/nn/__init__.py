"""Neural-network building blocks (``torch.nn``)."""
from .parameter import Parameter
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules_all  # noqa: F401
from . import functional
from . import init
from . import modules
from . import utils
