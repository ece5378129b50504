"""Per-package adapters for golden cases that are not plain function calls.

Each module `tests/golden_adapters/<package>/<any name>.py` may define `ADAPTERS`, a dict mapping a
manifest `function` string to `adapter(case, inputs, function) -> outputs`, used for every case of
that function whatever its file name, folder, sizes or static values:
  case:     the manifest entry (dict); an adapter reads its sizes and options from `static` (and,
            where the format leaves a choice, the case's `outputs` and `notes`), never from a
            particular case,
  inputs:   {name: torch tensor | tuple of tensors} of every in_<name> array of the case's own file:
            the call's `args` first, then extra inputs such as weights or dataset attributes,
  function: the object the manifest's `function` names, already imported.
It returns what the generic comparison accepts: a tensor, a tuple/list in `outputs` order, or a dict
keyed by output name.
"""


def call_args(case, inputs):
    """The case's array arguments, in manifest order."""
    return [inputs[name] for name in case["args"] if name in inputs]


def arg_inputs(case, inputs):
    """{name: tensor} of the case's array arguments only (not the extra stored inputs)."""
    return {name: inputs[name] for name in case["args"] if name in inputs}
