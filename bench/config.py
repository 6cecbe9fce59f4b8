"""params.yaml → typed, validated dataclasses.

params.yaml holds a base configuration, a ``profiles`` mapping of overrides
(``smoke`` for CI, ``quick`` for a 2-core CPU, ``paper`` for the papers' values)
and ``profile`` naming the active one. ``load_params`` deep-merges the active
profile over the base and validates every key: an unknown or mistyped key fails
here, at load, with its full key path and a hint — never hours later in a stage.

Plugin sections (``augment.methods.<name>``, ``train.classifiers.<name>``) are
validated against the plugin's own parameter dataclass through the registry.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from bench.errors import AugbenchError, ConfigError, RegistryError
from bench.typed import describe_value, from_dict, require, suggest

PROFILES = ("smoke", "quick", "paper")


@dataclass(frozen=True)
class MatrixParams:
    """What the pipeline runs (DVC matrix stages).

    ``methods × classifiers × seeds`` is the augmentation comparison (stage
    ``train``). ``zoo × seeds`` trains further classifiers — typically every
    transfer mode of every family — on the un-augmented baseline ``none`` only
    (stage ``zoo``), for the classifier tables (Byra 2021, Tables 1–2). A name in
    either list is a classifier *variant*: a key of ``train.classifiers``.
    """

    methods: list[str] = field(default_factory=lambda: ["none"])
    classifiers: list[str] = field(default_factory=lambda: ["resnet50"])
    seeds: list[int] = field(default_factory=lambda: [0])
    zoo: list[str] = field(default_factory=list)

    def check(self, path: str) -> None:
        for key in ("methods", "classifiers", "seeds"):
            values = getattr(self, key)
            require(len(values) > 0, f"{path}.{key}", "must not be empty")
            require(len(set(values)) == len(values), f"{path}.{key}", "contains duplicates")
        require(all(s >= 0 for s in self.seeds), f"{path}.seeds", "seeds must be >= 0")
        require(len(set(self.zoo)) == len(self.zoo), f"{path}.zoo", "contains duplicates")
        both = sorted(set(self.zoo) & set(self.classifiers))
        require(not both, f"{path}.zoo", f"{both} are already in matrix.classifiers",
                "the method matrix trains them on 'none' already; list each classifier in one place")
        require(not self.zoo or "none" in self.methods, f"{path}.zoo",
                "the zoo trains on the baseline 'none', which is not in matrix.methods", "add 'none' to matrix.methods")

    def pairs(self) -> list[tuple[str, str]]:
        """Every (method, classifier) the pipeline trains, in report order."""
        return [(m, c) for m in self.methods for c in self.classifiers] + [("none", c) for c in self.zoo]


@dataclass(frozen=True)
class PhantomParams:
    """The embedded synthetic ultrasound phantom (bench/data/phantom.py).

    By default the phantom has ``n_per_class`` images per class, split by ``split.ratios``.
    With ``val_per_class`` and ``test_per_class`` (both or neither) it has its own validation
    and test sets: ``n_per_class`` is then the *training* images per class, and the split is
    fixed by sample index (per class, the first ``n_per_class`` samples are train, the next
    ``val_per_class`` val, the next ``test_per_class`` test); ``split.ratios`` is not used.
    Sample ``i`` is the same whatever the counts, so larger held-out sets leave the training
    images as they are.
    """

    n_per_class: int = 150
    size: int = 128
    difficulty: float = 0.5
    seed: int = 0
    val_per_class: int | None = None  # None (with test_per_class): split n_per_class by split.ratios
    test_per_class: int | None = None

    @property
    def has_sets(self) -> bool:
        """True when the phantom has its own validation and test sets (split by sample index)."""
        return self.val_per_class is not None and self.test_per_class is not None

    def per_split(self) -> dict[str, int] | None:
        """Images per class of each split (train, val, test) when the phantom has its own sets, else None."""
        if not self.has_sets:
            return None
        return {"train": self.n_per_class, "val": self.val_per_class, "test": self.test_per_class}

    def total_per_class(self) -> int:
        """How many images of each class the phantom generates."""
        return sum((self.per_split() or {"all": self.n_per_class}).values())

    def describe(self) -> str:
        """The phantom's size per class, for logs and reports: ``"150 per class"`` or
        ``"64 train + 50 val + 50 test per class"``."""
        sets = self.per_split()
        counts = " + ".join(f"{n} {name}" for name, n in sets.items()) if sets else str(self.n_per_class)
        return f"{counts} per class"

    def check(self, path: str) -> None:
        require(self.seed >= 0, f"{path}.seed", "must be >= 0")
        for key, other in (("val_per_class", "test_per_class"), ("test_per_class", "val_per_class")):
            require(getattr(self, key) is not None or getattr(self, other) is None, f"{path}.{key}",
                    f"must be set when {other} is", "set both (the phantom's own val/test sets) or neither "
                    "(split n_per_class by split.ratios)")
        if self.has_sets:
            require(self.n_per_class >= 1, f"{path}.n_per_class", "must be >= 1 (training images per class)")
            require(self.val_per_class >= 1, f"{path}.val_per_class", "must be >= 1")
            require(self.test_per_class >= 1, f"{path}.test_per_class", "must be >= 1")
        else:
            require(self.n_per_class >= 10, f"{path}.n_per_class", "must be at least 10",
                    "val and test need at least one image per class")
        require(self.size >= 16, f"{path}.size", "must be at least 16 px")
        require(0.0 <= self.difficulty <= 1.0, f"{path}.difficulty", "must lie in [0, 1]")


@dataclass(frozen=True)
class DatasetParams:
    """What the prepare stage reads (docs/datasets.md). ``source``: ``phantom`` (generated),
    ``folder`` (``path`` = root/<class>/<images>), ``medmnist`` (``path`` = a MedMNIST v2 .npz;
    its official splits are kept; ``classes[k]`` names label k) or ``csv`` (``path`` = a CSV with
    path, label and optional group/patient columns). ``card``: a dataset card (name or YAML file;
    None: ``datasets/<name>.yaml`` when there is one), recorded in the prepared meta.json."""

    source: Literal["phantom", "folder", "medmnist", "csv"] = "phantom"
    path: str | None = None  # folder root, .npz file or .csv file (every source but phantom)
    name: str = "phantom"
    # Two class names and the positive one. null: benign and malignant (positive: malignant), except for
    # a MedMNIST file, whose labels are numbers: its dataset card's params.classes/positive (classes[k]
    # names label k; the prepare stage stops when no card gives them or given ones disagree with the card's).
    classes: list[str] | None = None
    positive: str | None = None
    drop_label_conflicts: bool = True
    near_duplicate_threshold: int = 4  # Hamming distance between 64-bit pHashes
    card: str | None = None

    def __post_init__(self) -> None:
        if self.source != "medmnist":  # a MedMNIST file's class names come from its card (bench.data.cards)
            object.__setattr__(self, "classes", ["benign", "malignant"] if self.classes is None else self.classes)
            object.__setattr__(self, "positive", "malignant" if self.positive is None else self.positive)

    def check(self, path: str) -> None:
        require(self.classes is None or len(self.classes) == 2, f"{path}.classes",
                "exactly two classes are supported", "the metrics are binary (negative vs positive)")
        require(self.classes is None or self.positive is None or self.positive in self.classes, f"{path}.positive",
                f"{self.positive!r} is not one of {self.classes}")
        require(self.source != "phantom" or set(self.classes) == {"benign", "malignant"}, f"{path}.classes",
                f"the phantom has the classes benign and malignant, not {self.classes}")
        require(self.source == "phantom" or bool(self.path), f"{path}.path",
                f"source is {self.source!r} but no path is given")
        suffix = {"medmnist": ".npz", "csv": ".csv"}.get(self.source)
        require(not suffix or str(self.path).lower().endswith(suffix), f"{path}.path",
                f"source is {self.source!r} but {self.path!r} is not a {suffix} file",
                "point it at the file, or change dataset.source")
        require(0 <= self.near_duplicate_threshold <= 64, f"{path}.near_duplicate_threshold",
                "must lie in [0, 64]")


SPLIT_MODES = ("fixed", "repeated-kfold")
REPEATED_KFOLD = "repeated-kfold"


@dataclass(frozen=True)
class SplitParams:
    """``mode: fixed``: one stratified, group-aware train/val/test split by ``ratios``.
    ``mode: repeated-kfold``: ``repeats`` × ``folds`` replicates (bench.data.splits.
    repeated_stratified_group_kfold): each holds one fold out as its test part and carves its
    validation part from the other folds in the proportion ``ratios[1] : ratios[0]``; the
    ``ratios[2]`` test share is not used. Replicate ``r`` takes the place of training seed
    ``matrix.seeds[r]``, so ``matrix.seeds`` lists one seed per replicate; only methods that store
    no images made from a split (``none``, online methods) can run (docs/statistics.md,
    "Repeated stratified group k-fold")."""

    # 70/15/15: Panigrahi et al. 2024, §Experimental setup.
    ratios: tuple[float, float, float] = (0.70, 0.15, 0.15)
    seed: int = 0
    mode: Literal["fixed", "repeated-kfold"] = "fixed"
    # Dietterich 1998 / Alpaydin 1999: 5 × 2 cv (5 repeats of 2-fold cross-validation).
    folds: int = 2
    repeats: int = 5

    @property
    def n_replicates(self) -> int:
        """Training runs per cell the split asks for: ``repeats × folds``, or 0 for a fixed split
        (where ``matrix.seeds`` alone decides)."""
        return self.repeats * self.folds if self.mode == REPEATED_KFOLD else 0

    @property
    def val_share(self) -> float:
        """The share of a replicate's training folds that becomes its validation part (``check``
        makes both shares positive under repeated-kfold)."""
        fit = self.ratios[0] + self.ratios[1]
        require(fit > 0, "split.ratios", "the training and validation shares are both 0",
                "give split.ratios[0] and split.ratios[1] positive values")
        return self.ratios[1] / fit

    def check(self, path: str) -> None:
        require(self.seed >= 0, f"{path}.seed", "must be >= 0")
        require(self.folds >= 2, f"{path}.folds", f"must be at least 2 (each fold is held out once), got {self.folds}")
        require(self.repeats >= 1, f"{path}.repeats", f"must be at least 1, got {self.repeats}")
        require(all(r >= 0 for r in self.ratios), f"{path}.ratios", "must be non-negative")
        require(math.isclose(sum(self.ratios), 1.0, abs_tol=1e-6), f"{path}.ratios",
                f"must sum to 1, sum is {sum(self.ratios):.6g}")
        if self.mode == REPEATED_KFOLD:  # each replicate's non-test folds are cut ratios[0] : ratios[1]
            require(self.ratios[0] > 0 and self.ratios[1] > 0, f"{path}.ratios",
                    f"under mode repeated-kfold the training and validation shares must be positive, got "
                    f"{list(self.ratios)}", "give split.ratios[0] and split.ratios[1] positive values")
        require(self.ratios[1] > 0 and self.ratios[2] > 0, f"{path}.ratios",
                "validation and test shares must be positive")


@dataclass(frozen=True)
class PreprocessParams:
    image_size: int = 64
    srad: bool = False
    # Panigrahi et al. 2024 §Experimental setup: iteration interval n_t = 10, L = 8 scales.
    srad_iterations: int = 10
    srad_scale: int = 8  # which scale of the multi-scale series is kept (1..L)
    srad_dt: float = 0.05

    def check(self, path: str) -> None:
        require(self.image_size >= 16, f"{path}.image_size", "must be at least 16 px")
        require(self.srad_iterations >= 1, f"{path}.srad_iterations", "must be >= 1")
        require(self.srad_scale >= 1, f"{path}.srad_scale", "must be >= 1")
        require(0 < self.srad_dt <= 0.25, f"{path}.srad_dt", "must lie in (0, 0.25] for stability")


@dataclass(frozen=True)
class EncoderParams:
    """Parameters of the ``encoder`` stage (params.yaml section ``encoder``; bench.nst.domain trains it).
    Defined here, not in bench.nst, so that loading the parameters imports no NST code."""

    archs: list[Literal["vgg19", "resnet50"]] = field(default_factory=lambda: ["vgg19"])
    init: Literal["auto", "imagenet", "random"] = "auto"
    epochs: int = field(default=10, metadata={"source": "ours"})
    batch_size: int = field(default=32, metadata={"source": "ours (Panigrahi 2024 train ResNet50 with 32)"})
    learning_rate: float = field(default=1e-4, metadata={"source": "ours: Adam, a common fine-tuning rate"})
    seed: int = 0
    bn_recalibration_images: int = field(default=256, metadata={
        "source": "ResNet50 only: precise-BN re-estimation (Wu & Johnson 2021), as bench.training"})

    def check(self, path: str) -> None:
        require(len(self.archs) > 0 and len(set(self.archs)) == len(self.archs), f"{path}.archs",
                "must name at least one encoder, each once")
        require(self.epochs >= 1, f"{path}.epochs", "must be >= 1")
        require(self.batch_size >= 1, f"{path}.batch_size", "must be >= 1")
        require(self.learning_rate > 0, f"{path}.learning_rate", "must be > 0")
        require(self.seed >= 0, f"{path}.seed", "must be >= 0")
        require(self.bn_recalibration_images >= 0, f"{path}.bn_recalibration_images", "must be >= 0")


# The keys of an `augment.methods` entry that are not the plugin's parameters: `method` names the plugin
# of a variant, `mode` picks how it runs (its own append/replace, or online: bench.online).
VARIANT_KEYS = ("method", "mode")
MODES = ("append", "replace", "online")


@dataclass(frozen=True)
class AugmentParams:
    """``methods``: one section per augmentation method (a row of the matrix). A section's key is
    the method name; ``method: PLUGIN`` makes it a variant of another plugin, inheriting that
    plugin's own section and overriding keys, as ``train.classifiers`` variants do; ``mode:
    online`` runs it as random transforms drawn per training minibatch instead of stored copies
    (docs/online-augmentation.md), e.g. ``geometric-flipping-online: {method: geometric-flipping,
    mode: online}``."""

    seed: int = 0
    sample_grid: int = 6  # examples per method in the sample grid PNG
    methods: dict[str, dict[str, Any]] = field(default_factory=dict)

    def check(self, path: str) -> None:
        require(self.seed >= 0, f"{path}.seed", "must be >= 0")
        require(self.sample_grid >= 1, f"{path}.sample_grid", "must be >= 1")
        for name, section in self.methods.items():
            key = f"{path}.methods.{name}"
            require(isinstance(section, dict), key, "must be a mapping of parameters")
            plugin = section.get("method", name)
            require(isinstance(plugin, str), f"{key}.method", "must be a plugin name",
                    "`augbench list` shows the augmenters")
            base = self.methods.get(plugin) or {} if plugin != name else {}
            require(plugin == name or "method" not in base, f"{key}.method",
                    f"{plugin!r} is itself a variant; name the plugin directly")
            mode = section.get("mode")
            require(mode is None or mode in MODES, f"{key}.mode",
                    f"must be one of {', '.join(MODES)}, got {describe_value(mode)}",
                    suggest(str(mode), MODES) or "online: random transforms per training minibatch")


BUDGETS = ("steps", "epochs")


@dataclass(frozen=True)
class ControlsParams:
    """The A/A control (stage ``control-aa``): the baseline ``none`` trained again on the seeds
    ``matrix.seeds + aa_seed_offset`` and compared with ``none`` as if it were a method; its
    verdict must be "no evidence". The positive and negative controls are augmenter plugins
    (``control-more-data``, ``control-shuffled-labels``) listed in ``matrix.methods``."""

    aa_seed_offset: int = 1000

    def check(self, path: str) -> None:
        require(self.aa_seed_offset >= 1, f"{path}.aa_seed_offset", "must be >= 1 (0 would re-train the same seeds)")

    def aa_seeds(self, seeds: list[int]) -> list[int]:
        return [s + self.aa_seed_offset for s in seeds]


@dataclass(frozen=True)
class TrainParams:
    """``classifiers``: one section per classifier variant. A section's key is the variant
    name; ``classifier: PLUGIN`` makes it a variant of another plugin, inheriting that
    plugin's own section and overriding keys (e.g. ``resnet50-feature-extraction:
    {classifier: resnet50, transfer: feature-extraction}``)."""

    classifiers: dict[str, dict[str, Any]] = field(default_factory=dict)
    # How many test images the train stage explains with LRP (bench.xai.runs.explained_rows):
    # None = all of them; otherwise a class-stratified pick of this many (LRP costs grow with the test set).
    explain_images: int | None = None
    # What an augmented run is given (bench.training.fit ``epoch_size``):
    #   steps   every method takes the optimizer steps of `none` — an epoch is as many images as the
    #           real training split, drawn afresh each epoch from the real + synthetic set — so that
    #           "more data" is not confounded with "more training";
    #   epochs  the papers' setting: an epoch is the whole real + synthetic set, so a ×k method takes
    #           k times the steps of `none` (Panigrahi 2024 Table 2; Fedoruk 2022).
    budget: str = "steps"
    # Under `steps`: at least this many images per epoch (null: the real training split). A small
    # training split otherwise gives epochs of a few optimizer steps, and the classifier's epoch
    # counts (epochs, patiences) then mean few steps; the epoch is also how often validation runs.
    min_epoch_images: int | None = None
    # Keep every run's chosen model (runs/<method>/<classifier>/seed<k>/model.keras + model.json, for
    # `augbench predict` and the external stage; docs/external.md). Disk: one file per run, ~94 MB for a
    # ResNet50 (its weights; the optimizer state is not kept), so ~2.4 GB for the quick matrix's ~25 runs.
    keep_models: bool = True

    def check(self, path: str) -> None:
        require(self.min_epoch_images is None or self.min_epoch_images >= 1, f"{path}.min_epoch_images",
                "must be >= 1 or null (null: an epoch is the real training split)")
        require(self.min_epoch_images is None or self.budget == "steps", f"{path}.min_epoch_images",
                "applies under budget: steps only (under epochs an epoch is the whole training set)",
                "set it to null, or budget: steps")
        require(self.explain_images is None or self.explain_images >= 1, f"{path}.explain_images",
                "must be >= 1 or null (null: explain every test image)")
        require(self.budget in BUDGETS, f"{path}.budget", f"must be one of {', '.join(BUDGETS)}, got {self.budget!r}")
        for name, section in self.classifiers.items():
            require(isinstance(section, dict), f"{path}.classifiers.{name}", "must be a mapping of parameters")
            plugin = section.get("classifier", name)
            require(isinstance(plugin, str), f"{path}.classifiers.{name}.classifier", "must be a plugin name")
            base = self.classifiers.get(plugin, {}) if plugin != name else {}
            require(plugin == name or "classifier" not in (base or {}),
                    f"{path}.classifiers.{name}.classifier",
                    f"{plugin!r} is itself a variant; name the plugin directly")


@dataclass(frozen=True)
class EvaluateParams:
    bootstrap_resamples: int = 1000
    confidence: float = 0.95
    threshold: float = 0.5
    seed: int = 0

    def check(self, path: str) -> None:
        require(self.seed >= 0, f"{path}.seed", "must be >= 0")
        require(self.bootstrap_resamples >= 1, f"{path}.bootstrap_resamples", "must be >= 1")
        require(0 < self.confidence < 1, f"{path}.confidence", "must lie in (0, 1)")
        require(0 <= self.threshold <= 1, f"{path}.threshold", "must lie in [0, 1]")


@dataclass(frozen=True)
class ScalingParams:
    """``augbench scale`` (stage ``scaling``): one NST augmentation method, and separately one
    classifier's training, timed under Horovod with each number of processes."""

    # False: switched off: `augbench scale --skip-if-off` (dvc.yaml) writes
    # only switched_off.json, `augbench scale` without that flag refuses to run.
    enabled: bool = True
    np: list[int] = field(default_factory=lambda: [1, 2, 4, 8])  # Panigrahi 2024 Table 3 ran 1, 2, 4, 6, 8
    method: str = "nst-gatys"
    factor: int | None = None  # synthetic images per training image for the timed run (None: the method's own)
    classifier: str | None = None  # also time this classifier's training on np = 1's images; None: skip
    train_epochs: int | None = 1  # epochs of that timed training (None: the profile's)
    threads_per_process: int | None = 1  # 1: every np gets one thread per process; None: cores // np

    def check(self, path: str) -> None:
        require(bool(self.np) and all(n >= 1 for n in self.np), f"{path}.np", "a non-empty list of counts >= 1")
        require(1 in self.np, f"{path}.np", "must include 1 (speedup is T_1/T_p)")
        require(self.train_epochs is None or self.train_epochs >= 1, f"{path}.train_epochs", "must be >= 1 or null")
        require(self.factor is None or self.factor >= 1, f"{path}.factor", "must be >= 1 or null")
        require(self.threads_per_process is None or self.threads_per_process >= 1,
                f"{path}.threads_per_process", "must be >= 1 or null")


@dataclass(frozen=True)
class PseudoLabelParams:
    """Stage ``pseudolabel``: Mikołajczyk & Grochowski 2018's protocol (§IV.C) — ``folds`` stratified,
    group-aware folds over every real image (with ``max_per_class``: over a subsample of them); per fold
    a domain encoder (when the method needs one), the method (its parameters: ``augment.methods.<method>``;
    mode ``replace``) and ``classifier`` (a key of ``train.classifiers``) trained on the synthetic images
    only, judged on the fold's val/test halves."""

    enabled: bool = True  # False: no folds (under DVC: switched_off.json only), and the report has no k-fold row
    method: str = "nst-pseudolabel"
    folds: int = 5  # Mikołajczyk & Grochowski 2018 §IV.C: 5-fold cross-validation
    classifier: str = "resnet50"
    seed: int = 0  # the fold assignment (the classifier's seed is matrix.seeds[0])
    encoder_epochs: int | None = None  # per-fold domain encoder; None: encoder.epochs
    # The folds cover at most this many images per class: a stratified, group-aware subsample drawn
    # from `seed` (bench.pseudolabel.subsample); None: every prepared image.
    max_per_class: int | None = None

    def check(self, path: str) -> None:
        require(self.folds >= 2, f"{path}.folds", "must be at least 2 (each fold is held out once)")
        require(self.seed >= 0, f"{path}.seed", "must be >= 0")
        require(self.max_per_class is None or self.max_per_class >= 2 * self.folds, f"{path}.max_per_class",
                f"must be >= 2 × folds = {2 * self.folds} or null",
                "every fold's held-out part is halved into val and test, each with every class")
        require(self.encoder_epochs is None or self.encoder_epochs >= 1, f"{path}.encoder_epochs",
                "must be >= 1 or null")


@dataclass(frozen=True)
class QualityParams:
    """Stage ``quality`` (bench.quality): which methods, which feature network for FID/KID."""

    enabled: bool = True  # False: the stage is skipped (under DVC: switched_off.json only); no quality table
    methods: list[str] | None = None  # None: every generative method of matrix.methods (Augmenter.generative)
    # inceptionv3: ImageNet InceptionV3 from the Keras cache (the usual FID; fails when absent);
    # domain: the encoder stage's domain encoder `domain_arch`; auto: inceptionv3 when cached, else domain
    # (not reproducible across machines, so not the default).
    feature_network: Literal["domain", "inceptionv3", "auto"] = "domain"
    domain_arch: str = "resnet50"
    kid_subsets: int = 100  # Bińkowski et al. 2018 §3: 100 subsets of size 1000
    kid_subset_size: int = 1000  # at most; at small n half the smaller set (bench.quality.kid_subset_size)
    # KID/FID features: d = min(max_dims, n / samples_per_dim) whitened principal components, n the smaller
    # real set (ours: n/d = 10 keeps sample-covariance eigenvalues within ≈ [0.47, 1.73]× the true ones,
    # Marchenko & Pastur 1967; bench/quality.py)
    samples_per_dim: int = 10
    max_dims: int = 64
    # memorisation: τ = this percentile of the held-out images' pixel distances to the nearest training image
    nn_percentile: float = 5.0

    def check(self, path: str) -> None:
        require(self.kid_subsets >= 2, f"{path}.kid_subsets", "must be >= 2 (KID reports a standard deviation)")
        require(self.kid_subset_size >= 2, f"{path}.kid_subset_size", "must be >= 2 (unbiased MMD²)")
        require(self.samples_per_dim >= 1, f"{path}.samples_per_dim", "must be >= 1 (images per feature dimension)")
        require(self.max_dims >= 2, f"{path}.max_dims", "must be >= 2 (the projection keeps at least 2)")
        require(0 < self.nn_percentile < 50, f"{path}.nn_percentile",
                "must be in (0, 50): a low percentile of the held-out images' nearest-training distances")
        require(self.methods is None or len(set(self.methods)) == len(self.methods), f"{path}.methods",
                "contains duplicates")


@dataclass(frozen=True)
class ExternalParams:
    """Stage ``external`` (bench/stages/external.py, docs/external.md): every kept model
    (``train.keep_models``) scored on an outside dataset, and its near-duplicates with the prepared data."""

    # A folder-per-class root with the class names of dataset.classes, a MedMNIST .npz or a CSV list;
    # null switches the stage off (under DVC: switched_off.json only).
    path: str | None = None
    # A MedMNIST .npz outside set's class names, label 0's first (its own order, matched to the model's by
    # name); null: from the dataset card of the file (bench.data.cards). Folders and CSV lists name theirs.
    classes: list[str] | None = None
    # pHash Hamming distance of a near-duplicate pair (bench.data.validate); null: dataset.near_duplicate_threshold
    near_duplicate_threshold: int | None = None

    @property
    def enabled(self) -> bool:
        return self.path is not None

    def check(self, path: str) -> None:
        require(self.path is None or bool(str(self.path).strip()), f"{path}.path",
                "is empty", "give an outside dataset's path, or null to switch the stage off")
        require(self.classes is None or (len(self.classes) == 2 and len(set(map(str, self.classes))) == 2),
                f"{path}.classes", "must name two different classes (label 0's first) or be null")
        require(self.near_duplicate_threshold is None or 0 <= self.near_duplicate_threshold <= 64,
                f"{path}.near_duplicate_threshold", "must lie in [0, 64] or be null")


@dataclass(frozen=True)
class Params:
    profile: str
    matrix: MatrixParams
    dataset: DatasetParams
    phantom: PhantomParams
    split: SplitParams
    preprocess: PreprocessParams
    encoder: EncoderParams
    augment: AugmentParams
    train: TrainParams
    evaluate: EvaluateParams
    scaling: ScalingParams = field(default_factory=ScalingParams)
    pseudolabel: PseudoLabelParams = field(default_factory=PseudoLabelParams)
    quality: QualityParams = field(default_factory=QualityParams)
    external: ExternalParams = field(default_factory=ExternalParams)
    controls: ControlsParams = field(default_factory=ControlsParams)

    def check(self, path: str) -> None:
        """Cross-section checks of ``split.mode: repeated-kfold`` (one seed per replicate; not the
        phantom's own val/test sets)."""
        n = self.split.n_replicates
        if not n:
            return
        require(not (self.dataset.source == "phantom" and self.phantom.has_sets), "split.mode",
                "repeated-kfold needs one pool of images to cut into folds, but the phantom has its own fixed "
                "validation and test sets (phantom.val_per_class / test_per_class)",
                "set phantom.val_per_class and phantom.test_per_class to null (n_per_class images split into "
                "folds), or split.mode: fixed")
        require(len(self.matrix.seeds) == n, "matrix.seeds",
                f"split.mode repeated-kfold with {self.split.repeats} repeats × {self.split.folds} folds has {n} "
                f"replicates, and replicate r trains with seed matrix.seeds[r]; {len(self.matrix.seeds)} seeds "
                f"are listed", f"list {n} seeds, e.g. matrix.seeds: {list(range(n))}")

    def quality_methods(self) -> list[str]:
        """The methods of the quality table: ``quality.methods``, or every generative method of the matrix."""
        from bench import registry

        if self.quality.methods is not None:
            return list(self.quality.methods)
        return [m for m in self.matrix.methods if self.method_mode(m) != "online"
                and getattr(registry.get("augmenter", self.method_plugin(m)), "generative", False)]

    def method_plugin(self, name: str) -> str:
        """The registered plugin behind augmentation method ``name`` (a variant names it with ``method:``)."""
        return (self.augment.methods.get(name) or {}).get("method", name)

    def method_mode(self, name: str) -> str:
        """How method ``name`` runs: its section's ``mode``, else its plugin's own (``append`` or
        ``replace``: stored synthetic images); ``online``: random transforms per training minibatch."""
        from bench import registry

        mode = (self.augment.methods.get(name) or {}).get("mode")
        return mode or getattr(registry.get("augmenter", self.method_plugin(name)), "mode", "append")

    def method_params(self, name: str):
        """The validated parameter dataclass of augmentation method ``name``: its plugin's section
        (when the method is a variant) overridden by its own keys, without ``method`` and ``mode``."""
        from bench import registry

        plugin = self.method_plugin(name)
        own = {k: v for k, v in (self.augment.methods.get(name) or {}).items() if k not in VARIANT_KEYS}
        if plugin != name:
            inherited = {k: v for k, v in (self.augment.methods.get(plugin) or {}).items() if k not in VARIANT_KEYS}
            own = deep_merge(inherited, own)
        return registry.params_for("augmenter", plugin, own, path=f"augment.methods.{name}")

    def classifier_plugin(self, name: str) -> str:
        """The registered plugin behind classifier variant ``name``."""
        return self.train.classifiers.get(name, {}).get("classifier", name)

    def classifier_params(self, name: str):
        """The validated parameters of classifier variant ``name``: its plugin's section
        (when the variant is not the plugin itself) overridden by its own keys."""
        from bench import registry

        plugin = self.classifier_plugin(name)
        own = {k: v for k, v in self.train.classifiers.get(name, {}).items() if k != "classifier"}
        section = deep_merge(self.train.classifiers.get(plugin, {}), own) if plugin != name else own
        return registry.params_for("classifier", plugin, section, path=f"train.classifiers.{name}")


def deep_merge(base: dict, override: dict) -> dict:
    """Recursively merge ``override`` into a copy of ``base`` (mappings merge, anything else
    replaces). Unknown keys are caught afterwards, when the result is validated."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def resolve(raw: dict, profile: str | None = None) -> dict:
    """The merged (base + profile) dict for ``profile`` (default: raw['profile'])."""
    if not isinstance(raw, dict):
        raise ConfigError("<root>", "params.yaml must be a mapping")
    profiles = raw.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise ConfigError("profiles", f"expected a mapping of profile name to overrides, got "
                          f"{describe_value(profiles)}")
    name = profile or raw.get("profile", "quick")
    if not isinstance(name, str):
        raise ConfigError("profile", f"expected a profile name, got {describe_value(name)}")
    if name not in profiles:
        raise ConfigError("profile", f"unknown profile {name!r}",
                          suggest(name, profiles) or f"known: {', '.join(sorted(map(str, profiles)))}")
    overrides = profiles[name] or {}
    if not isinstance(overrides, dict):
        raise ConfigError(f"profiles.{name}", f"expected a mapping of overrides, got {describe_value(overrides)}")
    base = {k: v for k, v in raw.items() if k not in ("profiles", "profile")}
    merged = deep_merge(base, overrides)
    merged["profile"] = name
    return merged


def set_dotted(data: dict, dotted: str, value: Any) -> None:
    """``data["a"]["b"] = value`` for ``"a.b"``, creating missing (or null) sections on the way."""
    node = data
    parts = dotted.split(".")
    for depth, part in enumerate(parts[:-1]):
        if node.get(part) is None:
            node[part] = {}
        node = node[part]
        if not isinstance(node, dict):
            raise ConfigError(dotted, f"{'.'.join(parts[:depth + 1])} is not a section, so it cannot hold "
                              f"{parts[-1]}", "see `augbench params` for the keys")
    node[parts[-1]] = value


def has_dotted(data: dict, dotted: str) -> bool:
    """Whether ``data`` holds the key path ``"a.b"``."""
    node: Any = data
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def get_dotted(data: dict, dotted: str) -> Any:
    """``data["a"]["b"]`` for ``"a.b"``; a ConfigError naming the section's keys (with a suggestion)
    when the path is not there."""
    node: Any = data
    parts = dotted.split(".")
    for depth, part in enumerate(parts):
        if not isinstance(node, dict) or part not in node:
            known = list(node) if isinstance(node, dict) else []
            where = ".".join(parts[:depth]) or "the parameters"
            raise ConfigError(dotted, f"no such parameter ({where} has {', '.join(map(str, known)) or 'no keys'})",
                              suggest(part, known) or "see `augbench params` for every key")
        node = node[part]
    return node


def parse_overrides(items: list[str] | None) -> dict:
    """``["train.classifiers.resnet50.epochs=3"]`` → nested dict (values parsed as YAML)."""
    out: dict = {}
    for item in items or []:
        if "=" not in item:
            raise ConfigError(item, "an override must look like key.path=value")
        key, value = (part.strip() for part in item.split("=", 1))
        if not all(key.split(".")):
            raise ConfigError(item, "an override must look like key.path=value (empty key)")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise ConfigError(key, f"override value {value!r} is not valid YAML: {problem}") from None
        set_dotted(out, key, parsed)
    return out


def load_raw(path: str | Path = "params.yaml") -> dict:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(str(path), "file not found", "run from the project root or pass --params")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"not valid YAML: {exc}") from None


def build(merged: dict, validate_plugins: bool = True) -> Params:
    params = from_dict(Params, merged)
    if validate_plugins:
        _validate_plugins(params)
    return params


def load_params(path: str | Path = "params.yaml", profile: str | None = None,
                overrides: list[str] | None = None, validate_plugins: bool = True) -> Params:
    """Load, merge the profile, apply ``key=value`` overrides, validate everything."""
    raw = load_raw(path)
    merged = deep_merge(resolve(raw, profile), parse_overrides(overrides))
    params = build(merged, validate_plugins)
    check_other_profiles(raw, params.profile, validate_plugins)
    return params


def check_other_profiles(raw: dict, active: str, validate_plugins: bool = True) -> None:
    """A typo in an inactive profile, or in a base value the active profile hides,
    fails now, not when someone switches profile."""
    base = {k: v for k, v in raw.items() if k != "profiles"}
    build({**base, "profile": "base"}, validate_plugins=False)
    for name in sorted(raw.get("profiles") or {}, key=str):
        if name == active:
            continue
        try:
            build(resolve(raw, name), validate_plugins=validate_plugins)
        except ConfigError as exc:
            if str(exc.key).startswith("profiles."):  # resolve() already named the profile's own key
                raise
            raise ConfigError(f"profiles.{name}: {exc.key}", exc.problem, exc.hint) from None


def _validate_plugins(params: Params) -> None:
    from bench import registry

    m = params.matrix
    checks = [("augmenter", params.method_plugin(name), f"matrix.methods.{i}") for i, name in enumerate(m.methods)]
    checks += [("augmenter", params.method_plugin(name), f"augment.methods.{name}") for name in params.augment.methods]
    checks += [("classifier", params.classifier_plugin(name), f"matrix.classifiers.{i}")
               for i, name in enumerate(m.classifiers)]
    checks += [("classifier", params.classifier_plugin(name), f"matrix.zoo.{i}") for i, name in enumerate(m.zoo)]
    checks += [("classifier", params.classifier_plugin(name), f"train.classifiers.{name}")
               for name in params.train.classifiers]
    checks += [("augmenter", params.method_plugin(params.pseudolabel.method), "pseudolabel.method"),
               ("classifier", params.classifier_plugin(params.pseudolabel.classifier), "pseudolabel.classifier")]
    checks += [("augmenter", params.method_plugin(name), f"quality.methods.{i}")
               for i, name in enumerate(params.quality.methods or [])]
    for kind, name, key in checks:
        try:
            registry.get(kind, name)  # unknown names fail with a suggestion
        except RegistryError as exc:
            raise RegistryError(f"params: {key}: {exc}") from None
    # Every configured plugin section is validated, not only those in the matrix, so a typo
    # in a method that is not run yet is not found only when it is added to the matrix.
    for name in dict.fromkeys([*m.methods, *params.augment.methods, params.pseudolabel.method]):
        params.method_params(name)
        _check_mode(params, name)
    stored = [(i, n) for i, n in enumerate(params.quality.methods or []) if params.method_mode(n) == "online"]
    require(not stored, f"quality.methods.{stored[0][0] if stored else 0}",
            f"{stored[0][1] if stored else ''!r} runs online and stores no images to measure",
            "list its offline method instead (the same transforms, stored)")
    for name in dict.fromkeys([*m.classifiers, *m.zoo, *params.train.classifiers]):
        params.classifier_params(name)
    _check_replicate_methods(params)
    if params.dataset.source != "phantom":  # the positive control draws new real images: the phantom only
        phantom_only = registry.positive_controls(m.methods, params.method_plugin)
        require(not phantom_only, "matrix.methods",
                f"{', '.join(phantom_only)} (the positive control) adds freshly generated phantom images, and "
                f"dataset.source {params.dataset.source!r} has no generator of new real images",
                f"remove {', '.join(phantom_only)} from matrix.methods for this dataset (--methods ...)")


def _check_replicate_methods(params: Params) -> None:
    """Under ``split.mode: repeated-kfold`` the augment stage runs once per method, on replicate 0's
    training part: a method that stores images made from it would hand them to replicates whose
    test fold they came from. Only methods that store none (``none``, a factor of 1, online
    methods: their transforms are drawn from each replicate's own training part as it trains) run."""
    from bench import registry

    if params.split.mode != REPEATED_KFOLD:
        return
    for i, name in enumerate(params.matrix.methods):
        if params.method_mode(name) == "online":
            continue
        plugin = registry.get("augmenter", params.method_plugin(name))(params.method_params(name))
        try:
            stores = plugin.n_synthetic(100) != 0
        except AugbenchError:  # a count that needs fit() first (NST factor null: every pair) is not 0
            stores = True
        require(not stores, f"matrix.methods.{i}",
                f"{name!r} stores synthetic images made from the training split, and under split.mode "
                "repeated-kfold that split is replicate 0's: its images would reach replicates whose test fold "
                "they were made from (leakage)",
                f"run {name!r} online (augment.methods.{name}-online: {{method: {params.method_plugin(name)}, "
                "mode: online}, for plugins with a transform: `augbench describe` lists the modes), drop it "
                "from matrix.methods, or use split.mode: fixed (docs/statistics.md, \"Repeated stratified group k-fold\")")


def _check_mode(params: Params, name: str) -> None:
    """A method's ``mode`` must be one its plugin supports (online: a plugin with ``transform``)."""
    from bench import registry

    mode, plugin = params.method_mode(name), params.method_plugin(name)
    supported = registry.modes_of(plugin)
    if mode == "online":
        problem = (f"augmenter {plugin!r} has no online mode (no random transform to draw per training "
                   f"minibatch: it stores the images it makes); it runs as {', '.join(supported)}")
    else:
        problem = f"augmenter {plugin!r} cannot run in mode {mode!r}; it runs as {', '.join(supported)}"
    require(mode in supported, f"augment.methods.{name}.mode", problem,
            f"remove `mode: {mode}` from augment.methods.{name}; `augbench describe {plugin}` lists its modes")


def params_record(params: Params) -> dict:
    """A plain-dict snapshot of the resolved params for provenance files."""
    return dataclasses.asdict(params)
