"""Knowledge distillation of a student from a teacher (paper Sec. 4)."""

from patternviz_widget.engine.distill.train import DistillHistory, distill

__all__ = ["DistillHistory", "distill"]
