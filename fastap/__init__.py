"""fastap: fast, lean Affinity Propagation clustering, a drop-in for scikit-learn's."""

from fastap._estimator import AffinityPropagation, affinity_propagation
from fastap._warmup import warmup

__version__ = "0.1.0"

__all__ = ["AffinityPropagation", "affinity_propagation", "warmup", "__version__"]
