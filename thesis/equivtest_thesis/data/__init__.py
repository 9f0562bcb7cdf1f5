"""Data the package ships for its suites (read with ``importlib.resources``).

``cwru_12k_subset.npz`` and ``cwru_index.json``: a compact copy of the CWRU bearing
data (12 kHz drive-end experiments), built once by ``thesis/tools/make_cwru_subset.py``;
see ``cwru_index.json`` for source, licence, storage format and what was kept. Read it
through :mod:`equivtest_thesis.zoo.vibration_data`.
"""

CWRU_NPZ = "cwru_12k_subset.npz"
CWRU_INDEX = "cwru_index.json"
