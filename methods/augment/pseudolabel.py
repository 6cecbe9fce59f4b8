"""``nst-pseudolabel``: NST images of benign content in malignant style, labelled by a teacher
(Mikołajczyk & Grochowski 2018), used *instead of* the real training images (mode ``replace``).

The NST is the shared Gatys engine (:mod:`bench.nst`) with the paper's settings where we
have them (§V: content layer conv5_2, content weight 0.025, style weight 1.0, max pooling,
initialised from the content image). The paper uses VGG16; augbench's encoders are VGG19
and ResNet50, so VGG19 stands in (its block5_conv2 is the same position). The paper's
weights belong to the Keras example's loss normalisation, not to ours (Gatys E_l), so the
balance they strike is not the same here: treat them as starting values.

A teacher (:func:`bench.pseudolabel.train_teacher`, trained on the real training split only)
scores every synthetic image; the threshold is moved so that half the images (⌊n/2⌋) are
malignant (:func:`bench.pseudolabel.balanced_labels`). Each provenance record keeps the
content and style ids, the content's label, the teacher score, the threshold and the
pseudo-label. The 5-fold protocol with its leakage check is :mod:`bench.pseudolabel`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bench.plugins import Generated, ImageSet
from bench.pseudolabel import MIKOLAJCZYK
from bench.typed import require
from methods.augment.nst import GatysNST, NSTParams

PAPER_V = MIKOLAJCZYK + " §V"


@dataclass(frozen=True)
class PseudoLabelParams(NSTParams):
    sampling: Literal["negative-to-positive"] = field(default="negative-to-positive", metadata={
        "source": MIKOLAJCZYK + " §III.B: benign content, malignant style"})
    content_layers: list[str] | None = field(default_factory=lambda: ["block5_conv2"], metadata={
        "source": PAPER_V + ": Conv5_2 (of VGG16; VGG19's block5_conv2 here)"})
    content_weight: float = field(default=0.025, metadata={"source": PAPER_V + ": content weight 0.025"})
    style_weight: float = field(default=1.0, metadata={
        "source": PAPER_V + ": style weight 1.0 (in the Keras example's normalisation, not ours)"})
    pooling: Literal["avg", "max"] = field(default="max", metadata={"source": PAPER_V + ": max pooling"})
    init: Literal["content", "noise"] = field(default="content", metadata={
        "source": PAPER_V + ": each base image initialised by the content picture"})
    teacher_filters: int = field(default=8, metadata={
        "source": "ours: the paper's teacher is 'a DNN previously trained on the target dataset'"})
    teacher_epochs: int = field(default=2, metadata={"source": "tiny by default (tests); ours per profile"})
    teacher_batch_size: int = field(default=16, metadata={"source": "ours"})
    teacher_learning_rate: float = field(default=1e-3, metadata={"source": "ours: Adam (Kingma & Ba 2015)"})

    def check(self, path: str) -> None:
        super().check(path)
        require(self.factor is not None, f"{path}.factor", "must be set (how many images per training image)")
        require(self.teacher_filters >= 1 and self.teacher_epochs >= 0 and self.teacher_batch_size >= 1,
                f"{path}.teacher_epochs", "teacher sizes must be positive (epochs >= 0)")
        require(self.teacher_learning_rate > 0, f"{path}.teacher_learning_rate", "must be > 0")


class NSTPseudoLabel(GatysNST):
    Params = PseudoLabelParams
    name = "nst-pseudolabel"
    mode = "replace"
    summary = ("Benign-content / malignant-style NST images, pseudo-labelled by a teacher with a threshold "
               "that balances the classes; they replace the real training set (Mikołajczyk & Grochowski 2018).")
    paper = f"{MIKOLAJCZYK}; Gatys, Ecker & Bethge 2016"

    def __init__(self, params):
        super().__init__(params)
        self.teacher = None

    def fit(self, train: ImageSet, rng: np.random.Generator) -> None:
        from bench.pseudolabel import TeacherConfig, train_teacher

        super().fit(train, rng)
        p = self.params
        self._teacher_config = TeacherConfig(p.teacher_filters, p.teacher_epochs, p.teacher_batch_size,
                                             p.teacher_learning_rate, int(rng.integers(2**31 - 1)))
        self.teacher = train_teacher(train.images, train.labels, self._teacher_config) if len(train) else None

    def transfer_config(self, n: int, n_train: int, train: ImageSet | None = None):
        config = super().transfer_config(n, n_train, train)
        n_content = max(1, int(np.sum(np.asarray(self._labels) == 0)))  # only benign images are contents
        return dataclasses.replace(config, pairs_per_content=self.params.pairs_per_content
                                   or max(1, -(-n // n_content)))

    def generate(self, train: ImageSet, n: int, rng: np.random.Generator) -> Generated:
        from bench.pseudolabel import balanced_labels, teacher_scores

        if self.teacher is None and len(train) and n:
            self.fit(train, rng)
        gen = super().generate(train, n, rng)
        if gen is None or len(gen) == 0:  # None: a Horovod rank other than 0 (only rank 0 gets the images)
            return gen
        scores = teacher_scores(self.teacher, gen.images)
        labels, threshold = balanced_labels(scores)
        index = {img_id: k for k, img_id in enumerate(train.ids)}
        provenance = [{**rec, "content_label": int(train.labels[index[rec["source_id"]]]),
                       "teacher_score": float(s), "threshold": threshold, "pseudo_label": int(y)}
                      for rec, s, y in zip(gen.provenance, scores, labels, strict=True)]
        self.run_info.update(teacher={**dataclasses.asdict(self._teacher_config), "threshold": threshold,
                                      "n_malignant": int(labels.sum()), "n_benign": int(len(labels) - labels.sum())})
        return Generated(gen.images, labels, provenance)
