"""scikit-learn's own estimator checks, with no expected failures."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from fastap import AffinityPropagation


@parametrize_with_checks(
    [
        AffinityPropagation(),
        AffinityPropagation(n_jobs=1, damping=0.7),
    ]
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
