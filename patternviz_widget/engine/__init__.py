"""The engine: the paper's computation on explicit tensors. Pure torch/numpy.

Rooms, each pointing only downwards (to ``device``, ``threads``, ``results.records`` and the
package's ``errors`` / ``defaults``), never to the pipeline, the study or the widget:

- ``capture``: probe data, forward hooks, region grids and the receptive-field boxes.
- ``method``: the paper's math — sample embedding (Sec. 3.2), importance weights and regional
  embedding (Sec. 3.3), knowledge points (Sec. 3.4), alignment, metrics, baselines.
- ``attack``: FGSM/PGD and the measurements of an attack (Sec. 4).
- ``distill``: training a student on a teacher (Sec. 4).
"""
