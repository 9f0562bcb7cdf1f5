"""Weight space: distances between flattened weight vectors and criteria.

- :mod:`.flat`: a module's parameters as one vector with an index back to its layers;
- :mod:`.distances`: the TransformerAE report's catalogue of weight-space distances;
- :mod:`.criteria`: those distances as equivtest criteria for same-architecture pairs.

The report's double-encoder merger lives with the merge experiment, in the thesis's
package (``equivtest_thesis.experiments.merge_model``).
"""

from __future__ import annotations

from .distances import (
    bottleneck,
    fft_l1,
    gromov_wasserstein,
    histograms,
    jacobian_frobenius,
    jensen_shannon,
    js_divergence,
    layerwise_mse,
    mape,
    norm_difference,
    persistence_diagram,
    quantile_loss,
    sinkhorn_w2,
    wasserstein2,
)
from .criteria import weight_criteria, weight_result
from .errors import WeightSpaceError
from .flat import FlatIndex, ParamSlice, flat_index, flatten_parameters, load_flat


__all__ = [
    "FlatIndex", "ParamSlice", "WeightSpaceError", "bottleneck", "fft_l1", "flat_index", "flatten_parameters",
    "gromov_wasserstein", "histograms", "jacobian_frobenius", "jensen_shannon", "js_divergence", "layerwise_mse",
    "load_flat", "mape", "norm_difference", "persistence_diagram", "quantile_loss", "sinkhorn_w2", "wasserstein2",
    "weight_criteria", "weight_result",
]
