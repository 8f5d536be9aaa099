"""fastap: fast, lean Affinity Propagation clustering, a drop-in for scikit-learn's.

The public names are loaded on first use (PEP 562), so that ``fastap``'s
command line starts, and answers Ctrl-C, before NumPy, SciPy, scikit-learn and
Numba are imported.
"""

import importlib

__version__ = "0.1.0"

# Public name -> the module that defines it.
_PUBLIC = {
    "AffinityPropagation": "fastap._estimator",
    "affinity_propagation": "fastap._estimator",
    "nearest_neighbors_graph": "fastap._graph",
    "ExemplarHierarchy": "fastap._hierarchy",
    "exemplar_hierarchy": "fastap._hierarchy",
    "fit_memory_bytes": "fastap._resources",
    "PreferenceRange": "fastap._preference",
    "preference_range": "fastap._preference",
    "IterationInfo": "fastap._run",
    "SearchStep": "fastap._search",
    "warmup": "fastap._warmup",
}

__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name):
    if name in _PUBLIC:
        value = getattr(importlib.import_module(_PUBLIC[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'fastap' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_PUBLIC))
