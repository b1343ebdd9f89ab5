"""Child-process entry point: ``python -m benchmarks._worker spec.json``.

The spec names ``func`` ("benchmarks.bench_embed:fit_one") and its ``kwargs``; the function returns a
JSON-able dict. The worker adds the process's peak RSS (ru_maxrss) so every method's memory is
measured alone, in a fresh interpreter.
"""

from __future__ import annotations

import importlib
import json
import sys

from ._common import _json_default, peak_rss_mb


def main(spec_path: str) -> None:
    with open(spec_path) as fh:
        spec = json.load(fh)
    module_name, func_name = spec["func"].split(":")
    func = getattr(importlib.import_module(module_name), func_name)
    result = func(**spec["kwargs"])
    result["peak_rss_mb"] = round(peak_rss_mb(), 1)
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized():
        result["cuda_peak_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    with open(spec["out"], "w") as fh:
        json.dump(result, fh, default=_json_default)


if __name__ == "__main__":
    main(sys.argv[1])
