"""Keys that name every result: (model, condition, epoch, layer)."""

from __future__ import annotations

from dataclasses import dataclass

#: The ``layer`` of a key that holds sample-level (whole-image) results.
SAMPLE = "<sample>"


@dataclass(frozen=True, order=True)
class Key:
    """Names one capture: which ``model`` ("main", "teacher", "student", ...), which ``condition``
    ("clean", "adversarial", ...), which training ``epoch`` and which ``layer`` (a module name as
    ``model.named_modules()`` prints it, or :data:`SAMPLE` for the sample features)."""

    model: str = "main"
    condition: str = "clean"
    epoch: int = 0
    layer: str = SAMPLE

    def __str__(self) -> str:
        return f"{self.model}|{self.condition}|{self.epoch}|{self.layer}"

    @classmethod
    def parse(cls, text: str) -> Key:
        """Inverse of ``str(key)``."""
        model, condition, epoch, layer = text.split("|", 3)
        return cls(model, condition, int(epoch), layer)

    def replace(self, **changes: object) -> Key:
        """Return a copy with some fields changed."""
        fields = {
            "model": self.model,
            "condition": self.condition,
            "epoch": self.epoch,
            "layer": self.layer,
        }
        fields.update(changes)
        return Key(**fields)  # type: ignore[arg-type]

    @property
    def is_sample(self) -> bool:
        return self.layer == SAMPLE

    def fit_order(self) -> tuple[str, bool, str, int, bool, str]:
        """Sort key of the order keys are fitted in: per model, clean first, epochs ascending, the
        sample embedding before the layers it anchors (paper Sec. 3.2 warm start, Sec. 3.3 L_align)."""
        return (
            self.model,
            self.condition != "clean",
            self.condition,
            self.epoch,
            self.layer != SAMPLE,
            self.layer,
        )
