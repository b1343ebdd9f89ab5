"""Teacher | student: one study holding both models, layers paired (the paper's distillation experiment).

:func:`compare` copies the records of a teacher study and a student study into one store under the
models "teacher" and "student". Each paired student layer is stored under its teacher layer's name,
so the two models' keys line up (``Key("teacher", c, e, L)`` beside ``Key("student", c, e, L)``).
When the teacher has an embedding, the student's features are projected with the **teacher's**
Λ, M, μ and π (our reading of the paper's distillation experiment: "both projected with the same Λ"), so 1 − cos(h_s, h_t)
and ‖h_s‖ − ‖h_t‖ compare points in one frame. Region rows pair one to one because both studies
keep the same (image, cell) rows (same probe data, seed, region budget and grid).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from patternviz_widget._validate import check_choice, did_you_mean
from patternviz_widget.engine.method.project import project
from patternviz_widget.errors import InputError, NotFittedError
from patternviz_widget.pipeline.state import StudyState
from patternviz_widget.results.keys import SAMPLE
from patternviz_widget.results.records import (
    RegionEmbedding,
    RegionRecord,
    SampleEmbedding,
    SampleRecord,
)
from patternviz_widget.results.store import ResultStore

TEACHER, STUDENT = "teacher", "student"


def pair_layers(
    teacher_layers: list[str], student_layers: list[str], pairs: Any = None, by: str = "name"
) -> list[tuple[str, str]]:
    """Return (teacher layer, student layer) pairs: explicit, by equal name, or by relative depth.

    ``by="depth"`` pairs the i-th of Lt teacher layers with the student layer at the same relative
    position, index ⌊i·(Ls−1)/(Lt−1) + ½⌋, in each study's layer order.
    """
    by = check_choice(by, ["name", "depth"], "pairing")
    if pairs is not None:
        items = list(pairs.items()) if isinstance(pairs, dict) else [tuple(p) for p in pairs]
        if not items:
            raise InputError("pairs is empty; pass {teacher_layer: student_layer, ...} or drop it.")
        for t, s in items:
            if t not in teacher_layers:
                raise InputError(
                    f"Teacher layer {t!r} is not in the teacher study. {did_you_mean(t, teacher_layers, 'layer')}"
                )
            if s not in student_layers:
                raise InputError(
                    f"Student layer {s!r} is not in the student study. {did_you_mean(s, student_layers, 'layer')}"
                )
        return [(str(t), str(s)) for t, s in items]
    if by == "name":
        out = [(n, n) for n in teacher_layers if n in student_layers]
        if not out:
            raise InputError(
                f"The teacher's layers {teacher_layers} and the student's {student_layers} share no "
                "name. Pass by='depth' to pair them by relative depth, or pairs={teacher: student}."
            )
        return out
    lt, ls = len(teacher_layers), len(student_layers)
    if lt == 0 or ls == 0:
        raise InputError("Both studies need at least one layer to pair.")
    return [
        (t, student_layers[0 if lt == 1 else int(i * (ls - 1) / (lt - 1) + 0.5)])
        for i, t in enumerate(teacher_layers)
    ]


def check_same_probe(a: ResultStore, b: ResultStore) -> None:
    """Raise InputError unless two stores analysed the same probe images in the same order."""
    pa, pb = a.probe, b.probe
    if pa is None or pb is None:
        raise NotFittedError(
            "Both studies need their probe set; make them with pv.Study(model, data, ...)."
        )
    same = (
        pa.labels.shape == pb.labels.shape
        and np.array_equal(pa.labels, pb.labels)
        and np.array_equal(pa.data_index, pb.data_index)
        and tuple(pa.input_size) == tuple(pb.input_size)
        and pa.thumbnails.shape == pb.thumbnails.shape
        and np.array_equal(pa.thumbnails, pb.thumbnails)
    )
    if not same:
        raise InputError(
            f"The teacher and the student were studied on different probe images ({pa.labels.shape[0]} "
            f"vs {pb.labels.shape[0]} images, or another order/input size). Make both studies from "
            "the same data with the same max_images so their regions can be compared one to one."
        )


def compare(
    teacher: StudyState, student: StudyState | dict[str, StudyState], pairs: Any = None, by: str = "name",
    project: bool = True,
) -> StudyState:  # fmt: skip
    """Return the state of a new study holding the teacher as model "teacher" and the student(s) beside it.

    Args:
        teacher: the study of the teacher.
        student: the study of one student (model "student"), or ``{name: study}`` for several
            (models named by the keys, e.g. {"logit-KD": s1, "feature-KD": s2, "scratch": s3}).
        pairs: ``{teacher_layer: student_layer}`` (or a list of pairs); None pairs automatically.
        by: "name" (equal module names) or "depth" (relative depth in each study's layer list).
        project: project each student's features with the teacher's latest clean embedding (Λ, M,
            μ, π) when the teacher has one; False keeps only what each study had.

    Raises:
        InputError: different probe sets, no common layers, region rows that do not pair, or
            channel counts that differ from the teacher's Λ.
    """
    students = dict(student) if isinstance(student, dict) else {STUDENT: student}
    for name in students:
        if not isinstance(name, str) or not name or "|" in name or name == TEACHER:
            raise InputError(
                f"Student names must be non-empty strings without '|' other than 'teacher'; got {name!r}."
            )
    _check_study(teacher, "teacher")
    for name, st in students.items():
        _check_study(st, f"student {name!r}" if name != STUDENT else "student")
    t_layers = list(teacher.store.meta.get("layers") or teacher.layers)
    all_pairs: dict[str, list[tuple[str, str]]] = {}
    for name, st in students.items():
        check_same_probe(teacher.store, st.store)
        _check_same_classes(teacher.store, st.store, name)
        s_layers = list(st.store.meta.get("layers") or st.layers)
        all_pairs[name] = pair_layers(t_layers, s_layers, pairs, by)
    store = ResultStore()
    store.probe = teacher.store.probe
    store.meta.update({k: v for k, v in teacher.store.meta.items() if k != "partial"})
    paired = {t for ps in all_pairs.values() for t, _ in ps}
    store.meta["layers"] = [t for t in t_layers if t in paired]
    store.meta["model_name"] = TEACHER
    t_src = teacher.store.meta.get("model_name", "main")
    _copy(teacher.store, store, t_src, TEACHER, {t: t for t in paired})
    sources = {TEACHER: t_src}
    for name, st in students.items():
        sources[name] = st.store.meta.get("model_name", "main")
        _copy(st.store, store, sources[name], name, {s: t for t, s in all_pairs[name]})
        _check_rows(store, name, all_pairs[name])
    projected = _project_students(store, list(students)) if project else []
    store.meta["compare"] = {
        "models": [TEACHER, *students],
        "pairs": {name: [list(p) for p in ps] for name, ps in all_pairs.items()},
        "by": by,
        "sources": sources,
        "projected_with_teacher": projected,
    }
    out = StudyState.from_store(store)
    out.models = {TEACHER: teacher.model, **{n: st.model for n, st in students.items()}}
    out.pairing = all_pairs
    return out


def _check_study(state: Any, role: str) -> None:
    """Raise InputError unless ``study`` is a Study whose own model has a clean capture."""
    store = getattr(state, "store", None)
    if not isinstance(store, ResultStore):
        raise InputError(
            f"The {role} must be a pv.Study (made with pv.Study(model, data, layers=...) or "
            f"pv.Study.load(path)), got {type(state).__name__}."
        )
    model = store.meta.get("model_name", "main")
    if not store.find(SampleRecord, model=model, layer=SAMPLE):
        raise InputError(
            f"The {role} study has no capture of its model {model!r} yet, so there is nothing to "
            f"compare. Run {role.split()[0]}_study.capture() (after training) first."
        )


def _check_same_classes(a: ResultStore, b: ResultStore, student: str) -> None:
    """Raise InputError unless both studies have the same classes (count and names, in order)."""
    ka, kb = a.meta.get("num_classes"), b.meta.get("num_classes")
    na = list(a.probe.class_names) if a.probe is not None else []
    nb = list(b.probe.class_names) if b.probe is not None else []
    if ka != kb:
        raise InputError(
            f"The teacher has {ka} classes but {student!r} has {kb}; a student is compared with its "
            "teacher class by class. Compare a student trained on the teacher's classes."
        )
    if na != nb:
        diff = next((i for i, (x, y) in enumerate(zip(na, nb)) if x != y), None)
        where = (
            f"class {diff}: {na[diff]!r} vs {nb[diff]!r}" if diff is not None else f"{na} vs {nb}"
        )
        raise InputError(
            f"The teacher's and {student!r}'s class names differ ({where}). Make both studies "
            "with the same class_names=[...] in the same order."
        )


def _copy(
    src: ResultStore, dst: ResultStore, model: str, as_model: str, rename: dict[str, str]
) -> None:
    """Copy ``model``'s records of the renamed layers (and the sample layer) as ``as_model``."""
    for (key, _), rec in src.items_with_kind():
        if key.model == model and (key.layer == SAMPLE or key.layer in rename):
            dst.put(key.replace(model=as_model, layer=rename.get(key.layer, key.layer)), rec)


def _check_rows(store: ResultStore, student: str, pairs: list[tuple[str, str]]) -> None:
    for t, s in pairs:
        tk = store.find(RegionRecord, model=TEACHER, layer=t)
        sk = store.find(RegionRecord, model=student, layer=t)
        if not tk or not sk:
            continue
        a, b = store.get(tk[0], RegionRecord), store.get(sk[0], RegionRecord)
        if tuple(a.grid_shape) != tuple(b.grid_shape) or not (
            np.array_equal(a.image, b.image) and np.array_equal(a.grid, b.grid)
        ):
            raise InputError(
                f"Teacher layer {t!r} ({a.grid_shape[0]}×{a.grid_shape[1]} grid, {len(a.image)} rows) and "
                f"student layer {s!r} ({b.grid_shape[0]}×{b.grid_shape[1]}, {len(b.image)} rows) keep "
                "different regions. Pair layers of equal spatial size and make both studies with the "
                "same seed, regions_per_image, max_regions and grid=(rows, cols). Regions are drawn per "
                "layer name, so layers with different names pair only with regions_per_image=None."
            )


def _project_students(store: ResultStore, students: list[str]) -> list[str]:
    """Project every student record with the teacher's latest clean embedding; return keys done."""
    done: list[str] = []
    s_keys = store.find(SampleEmbedding, model=TEACHER, condition="clean", layer=SAMPLE)
    if not s_keys:
        return done
    t_sample = store.get(s_keys[-1], SampleEmbedding)
    for key in [k for m in students for k in store.find(SampleRecord, model=m)]:
        fix = "Compare students of the teacher's architecture, or pass project=False and embed each model on its own."
        emb = project(
            store.get(key, SampleRecord), t_sample, str(s_keys[-1]), store.probe.labels, fix
        )
        store.put(key, emb)
        done.append(str(key))
    for layer in store.layers(model=TEACHER):
        r_keys = store.find(RegionEmbedding, model=TEACHER, condition="clean", layer=layer)
        if not r_keys:
            continue
        t_emb = store.get(r_keys[-1], RegionEmbedding)
        for key in [k for m in students for k in store.find(RegionRecord, model=m, layer=layer)]:
            done.append(str(key))
            fix = (
                "A student layer must have the teacher layer's channel count to be read in the teacher's "
                "frame. Pair other layers, or pass project=False."
            )
            store.put(key, project(store.get(key, RegionRecord), t_emb, str(r_keys[-1]), fix=fix))
    return done
