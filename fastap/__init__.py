"""fastap: fast, lean Affinity Propagation clustering, a drop-in for scikit-learn's."""

from fastap._estimator import AffinityPropagation, affinity_propagation
from fastap._graph import nearest_neighbors_graph
from fastap._hierarchy import ExemplarHierarchy, exemplar_hierarchy
from fastap._preference import PreferenceRange, preference_range
from fastap._run import IterationInfo
from fastap._search import SearchStep
from fastap._warmup import warmup

__version__ = "0.1.0"

__all__ = [
    "AffinityPropagation",
    "ExemplarHierarchy",
    "IterationInfo",
    "PreferenceRange",
    "SearchStep",
    "affinity_propagation",
    "exemplar_hierarchy",
    "nearest_neighbors_graph",
    "preference_range",
    "warmup",
    "__version__",
]
