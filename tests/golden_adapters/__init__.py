"""Per-package adapters for golden cases that are not plain function calls.

Each module `tests/golden_adapters/<package>/<any name>.py` may define `ADAPTERS`, a dict mapping a case file
name (preferred) or a manifest `function` string to `adapter(case, inputs, function) -> outputs`:
  case:     the manifest entry (dict),
  inputs:   {argname: torch tensor | tuple of tensors} built from the case's `in_*` arrays,
  function: the object the manifest's `function` names, already imported.
It returns what the generic comparison accepts: a tensor, a tuple/list in `outputs` order, or a dict
keyed by output name.
"""
