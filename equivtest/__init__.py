"""equivtest: test whether two neural networks are equivalent."""

__version__ = "0.1.0"
