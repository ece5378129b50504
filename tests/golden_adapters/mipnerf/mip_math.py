"""Adapters for mipnerf.internal.mip / math cases that are not plain calls."""

from tests.golden_adapters import arg_inputs, call_args


def _flatten(result):
    """(t_vals, (means, covs)) -> (t_vals, means, covs); other results unchanged."""
    if isinstance(result, tuple):
        return tuple(x for item in result for x in (item if isinstance(item, tuple) else (item,)))
    return result


def _by_keyword(case, inputs, function):
    """Every argument by name: the cases store `key` (None, the deterministic path) as a static
    value while array arguments after it are positional in the manifest; nested outputs flattened."""
    assert case["static"].get("key") is None, "these cases are the deterministic path"
    return _flatten(function(**arg_inputs(case, inputs), **case["static"]))


def _scalar_inputs(case, inputs, function):
    """0-d inputs stay 0-d: the harness's np.ascontiguousarray turns a 0-d array into shape [1]."""
    return function(*(x.reshape(()) for x in call_args(case, inputs)))


ADAPTERS = {
    "mipnerf.internal.math:compute_avg_error": _scalar_inputs,
    "mipnerf.internal.math:sorted_piecewise_constant_pdf": _by_keyword,
    "mipnerf.internal.mip:sample_along_rays": _by_keyword,
    "mipnerf.internal.mip:resample_along_rays": _by_keyword,
}
