"""The batched NST engine: B images optimised at once in one fixed-shape ``tf.function``.

Per resolution level (coarse to fine) the engine creates, once:

- one image variable (B, h, w, 1) and the optimiser state of that shape;
- one target variable per content layer and per style statistic;
- three traced functions: ``features`` (targets of B source images), ``steps``
  (n optimisation steps; n is a tensor, so no retracing) and ``evaluate``.

``run(jobs, sources)`` then

1. computes the content features of every content image and the style
   representation of every style image once per level, and caches them;
2. for each batch of B jobs (the last one padded by repeating its final job;
   padding is dropped): assigns the init, the gathered targets (multi-reference
   targets combined by the style loss) and per-image learning rates, zeroes the
   optimiser state, runs the iterations of each level (the result of a level,
   upsampled bilinearly, initialises the next), evaluates the final losses;
3. yields one :class:`Shard` per batch: images, per-image losses (final total,
   content, style, TV; ``initial`` = the loss at the first step of the finest
   level; ``grey`` = a mid-grey image's loss) and status.

Memory: the target cache holds, per level and source image, the content features
and the style representation — N_l² floats per style layer for Gram/poly (≈ 2.4 MB
per image for VGG19 at any size), but the features themselves (M_l·N_l floats,
≈ 24 MB per image at 224 px) for the Gaussian kernel.

A job whose content or style image holds a NaN/inf pixel is refused before optimisation
(``ok`` false, ``reason`` names the image and its role): the source images a run needs are
checked once, in numpy, before any TensorFlow op — whether a NaN pixel reaches the loss
depends on the CPU's kernels (``tf.nn.max_pool2d`` drops it on some), so the loss guard
below cannot be relied on for inputs. A refused source never enters TensorFlow, and a
batch holding refused jobs runs its other jobs as a batch of those alone (refused slots
are refilled like padding), so they come out exactly as without the refused ones; a
refused job's image and losses are NaN.

An image whose loss or gradient became NaN/inf at any step, or whose final loss
exceeds ``divergence_ratio`` × the loss of a uniform mid-grey image against the
same targets (the "knows nothing" answer), is marked failed (``ok`` false,
``reason`` set); the caller decides what to do with it and never writes it.
Judging divergence against the image's own first-step loss does not work: that
loss is ~0 for a content image paired with itself (all-within-class includes
such pairs), and the linear-time Gaussian MMD estimate can be negative. Everything is per image, so an image optimised alone and inside a
batch give the same result up to floating-point reassociation.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from bench.errors import AugbenchError
from bench.finite import nonfinite_rows
from bench.nst.encoders import feature_model, to_encoder_input
from bench.nst.losses import StyleLoss, content_loss, flatten, total_variation
from bench.nst.optim import LBFGS, Adam, AdamConfig

STEPS_PER_CALL = 10  # optimisation steps per call of the traced loop (progress granularity)
GREY = 0.5  # the "knows nothing" image that divergence is judged against
LOSS_KEYS = ("total", "content", "style", "tv", "grey", "initial")  # Shard.losses


@dataclass(frozen=True)
class LossConfig:
    """Eq. 1 of Panigrahi et al. 2024: L = α·L_c + β·Σ_l w_l E_l (+ a total-variation term)."""

    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    style_layer_weights: tuple[float, ...]
    content_weight: float  # α
    style_weight: float  # β
    tv_weight: float = 0.0
    # nst-proposed-lrp: the content loss is ½ Σ ω (F − P)² with per-source weights ω
    # (bench.nst.losses.content_loss); the engine's run() then needs ``content_weights``.
    weighted_content: bool = False
    # True: the content term is divided by its number of feature elements (bench.nst.losses.content_loss,
    # ``normalise``), so that α and β weigh terms of comparable size (nst-proposed); False: Eq. 2 as printed.
    normalise_content: bool = False

    def __post_init__(self):
        if len(self.style_layer_weights) != len(self.style_layers):
            raise AugbenchError(f"{len(self.style_layer_weights)} style layer weights for "
                                f"{len(self.style_layers)} style layers")


@dataclass(frozen=True)
class Schedule:
    """How to optimise: optimiser, coarse-to-fine levels (scale of the image size and
    iterations at each), learning rate, init, batch size and failure threshold."""

    scales: tuple[float, ...] = (1.0,)
    iterations: tuple[int, ...] = (10,)
    optimizer: Literal["adam", "lbfgs"] = "adam"
    learning_rate: float = 0.02
    adam: AdamConfig = field(default_factory=AdamConfig)
    lbfgs_history: int = 10
    init: Literal["content", "noise"] = "content"
    batch_size: int = 8
    divergence_ratio: float = 1.0

    def __post_init__(self):
        if len(self.scales) != len(self.iterations) or not self.scales:
            raise AugbenchError("scales and iterations need one entry per resolution level")
        if list(self.scales) != sorted(self.scales) or self.scales[-1] != 1.0:
            raise AugbenchError(f"scales must increase and end at 1.0 (coarse to fine), got {list(self.scales)}")


@dataclass(frozen=True)
class Job:
    """One image to make: content index, style indices (several = multi-reference), the seed
    of its noise init, and a learning-rate multiplier (lowered on retries)."""

    content: int
    styles: tuple[int, ...]
    seed: int
    lr_scale: float = 1.0


@dataclass
class Shard:
    """The results of one batch: images (n, H, W), per-image losses and status."""

    jobs: list[Job]
    images: np.ndarray
    losses: dict[str, np.ndarray]
    ok: np.ndarray
    reasons: list[str]


def refusal(job: Job, nonfinite: frozenset[int]) -> str:
    """Why ``job`` cannot run (its content or a style source image is non-finite), or ""."""
    if job.content in nonfinite:
        return f"non-finite content image (source {job.content}): refused before optimisation"
    bad = [s for s in job.styles if s in nonfinite]
    if bad:
        return f"non-finite style image (source {bad[0]}): refused before optimisation"
    return ""


def level_sizes(size: tuple[int, int], scales: Sequence[float]) -> list[tuple[int, int]]:
    return [(max(1, round(size[0] * s)), max(1, round(size[1] * s))) for s in scales]


def resize(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(N, H, W) → (N, h, w): area averaging to shrink, bilinear to enlarge; clipped to [0, 1]."""
    import tensorflow as tf

    if images.shape[1:3] == tuple(size):
        return images.astype(np.float32)
    method = "area" if size[0] <= images.shape[1] else "bilinear"
    out = tf.image.resize(images[..., None].astype(np.float32), size, method=method)[..., 0].numpy()
    return np.clip(out, 0.0, 1.0)


class _Level:
    """Variables and traced functions for one image size; created once, reused for every batch."""

    def __init__(self, model, names: list[str], style_loss: StyleLoss, losses: LossConfig,
                 schedule: Schedule, size: tuple[int, int]):
        import tensorflow as tf

        self.model, self.names, self.style_loss, self.losses, self.schedule = model, names, style_loss, losses, schedule
        self.size = size
        b = schedule.batch_size
        shape = (b, size[0], size[1], 1)
        self.x = tf.Variable(tf.zeros(shape), trainable=False, name="nst_images")
        self.lr = tf.Variable(tf.zeros((b,)), trainable=False, name="nst_lr")
        self.seed = tf.Variable(tf.zeros((2,), tf.int64), trainable=False, name="nst_seed")
        self.step_count = tf.Variable(tf.zeros((), tf.int64), trainable=False, name="nst_step")
        self.first_loss = tf.Variable(tf.zeros((b,)), trainable=False, name="nst_first_loss")
        self.bad = tf.Variable(tf.zeros((b,), tf.bool), trainable=False, name="nst_nonfinite")
        probe = self._run_model(tf.zeros((1, *size, 1)))
        self._check_sizes(probe)
        self.content_targets = [tf.Variable(tf.zeros((b, *probe[n].shape[1:])), trainable=False)
                                for n in losses.content_layers]
        self.content_weights = ([tf.Variable(tf.ones((b, *probe[n].shape[1:])), trainable=False)
                                 for n in losses.content_layers] if losses.weighted_content else None)
        self.style_targets = []
        for n in losses.style_layers:
            rep = style_loss.representation(flatten(probe[n]))
            self.style_targets.append([tf.Variable(tf.zeros((b, *r.shape[1:])), trainable=False) for r in rep])
        self.optimizer = (Adam(shape, schedule.adam) if schedule.optimizer == "adam"
                          else LBFGS(shape, schedule.lbfgs_history))
        self.features = tf.function(self._features)
        self.steps = tf.function(self._steps)
        self.evaluate = tf.function(self._evaluate)

    def _check_sizes(self, probe) -> None:
        need = getattr(self.style_loss, "min_positions", 1)
        for n in self.losses.style_layers:
            h, w = probe[n].shape[1:3]
            if h * w < need:
                raise AugbenchError(f"style layer {n} is {h}×{w} at {self.size[0]}×{self.size[1]} px; "
                                    f"{self.style_loss.name} needs at least {need} positions — drop the layer, "
                                    "or use a larger image or scale")

    def _run_model(self, grey) -> dict:
        out = self.model(to_encoder_input(grey), training=False)
        out = out if isinstance(out, (list, tuple)) else [out]
        return dict(zip(self.names, out, strict=True))

    # ----------------------------------------------------------- traced bodies

    def _features(self, grey):
        feats = self._run_model(grey)
        content = [feats[n] for n in self.losses.content_layers]
        style = [list(self.style_loss.representation(flatten(feats[n]))) for n in self.losses.style_layers]
        return content, style

    def _loss_terms(self, x):
        import tensorflow as tf

        feats = self._run_model(x)
        weights = self.content_weights or [None] * len(self.content_targets)
        content = tf.add_n([content_loss(feats[n], t, w, self.losses.normalise_content) for n, t, w in
                            zip(self.losses.content_layers, self.content_targets, weights, strict=True)])
        style = []
        for i, (n, w, t) in enumerate(zip(self.losses.style_layers, self.losses.style_layer_weights,
                                          self.style_targets, strict=True)):
            seed = tf.stack([self.seed[0], self.seed[1] + self.step_count * 64 + i])
            style.append(w * self.style_loss.compare(flatten(feats[n]), t, seed))
        style = tf.add_n(style)
        tv = total_variation(x)
        total = self.losses.content_weight * content + self.losses.style_weight * style + self.losses.tv_weight * tv
        return total, content, style, tv

    def _steps(self, n):
        import tensorflow as tf

        for _ in tf.range(n):
            with tf.GradientTape(watch_accessed_variables=False) as tape:
                tape.watch(self.x)
                total = self._loss_terms(self.x)[0]
                objective = tf.reduce_sum(total)
            grad = tape.gradient(objective, self.x)
            self.step_count.assign_add(1)
            finite = tf.logical_and(tf.math.is_finite(total),
                                    tf.reduce_all(tf.math.is_finite(grad), axis=[1, 2, 3]))
            self.bad.assign(tf.logical_or(self.bad, tf.logical_not(finite)))
            self.first_loss.assign(tf.where(self.step_count == 1, total, self.first_loss))
            self.optimizer.step(self.x, grad, self.lr)

    def term_gradients(self) -> dict:
        """‖∇_x α·L_c‖ and ‖∇_x β·L_s‖ (L2 over each image's pixels) at the current images, eagerly:
        how strongly each term pulls at this point (docs/nst.md "Balancing the terms")."""
        import tensorflow as tf

        with tf.GradientTape(persistent=True, watch_accessed_variables=False) as tape:
            tape.watch(self.x)
            _, content, style, _ = self._loss_terms(self.x)
            weighted_content = tf.reduce_sum(self.losses.content_weight * content)
            weighted_style = tf.reduce_sum(self.losses.style_weight * style)
        norms = {}
        for key, term in (("content", weighted_content), ("style", weighted_style)):
            grad = tape.gradient(term, self.x)
            norms[key] = tf.sqrt(tf.reduce_sum(tf.square(grad), axis=[1, 2, 3])).numpy()
        del tape
        return norms

    def _evaluate(self):
        import tensorflow as tf

        total, content, style, tv = self._loss_terms(self.x)
        grey = self._loss_terms(tf.fill(tf.shape(self.x), GREY))[0]
        finite_x = tf.reduce_all(tf.math.is_finite(self.x), axis=[1, 2, 3])
        return {"total": total, "content": content, "style": style, "tv": tv, "grey": grey,
                "first": self.first_loss, "nonfinite": tf.logical_or(self.bad, tf.logical_not(finite_x))}

    # ----------------------------------------------------------- host side

    def start_batch(self, init: np.ndarray, content: list[np.ndarray], style: list[list[np.ndarray]],
                    lr: np.ndarray, seed: int, weights: list[np.ndarray] | None = None) -> None:
        self.x.assign(init[..., None])
        for var, value in zip(self.content_targets, content, strict=True):
            var.assign(value)
        for var, value in zip(self.content_weights or [], weights or [], strict=True):
            var.assign(value)
        for vars_, values in zip(self.style_targets, style, strict=True):
            for var, value in zip(vars_, values, strict=True):
                var.assign(value)
        self.lr.assign(lr.astype(np.float32))
        self.seed.assign(np.array([seed, 0], np.int64))
        self.step_count.assign(0)
        self.first_loss.assign(np.zeros(self.schedule.batch_size, np.float32))
        self.bad.assign(np.zeros(self.schedule.batch_size, bool))
        self.optimizer.reset()


class NSTEngine:
    """Batched style transfer for one encoder, one loss and one schedule at one image size."""

    def __init__(self, arch: str, weights, pooling: str, style_loss: StyleLoss, losses: LossConfig,
                 schedule: Schedule, image_size: tuple[int, int]):
        import tensorflow as tf

        # Deterministic kernels, as the rest of the project (bench.training.seed_everything); every
        # op the engine uses has a deterministic CPU implementation.
        tf.config.experimental.enable_op_determinism()
        self.names = list(dict.fromkeys([*losses.style_layers, *losses.content_layers]))
        self.model = feature_model(arch, weights, self.names, pooling)
        self.style_loss, self.losses, self.schedule = style_loss, losses, schedule
        self.image_size = tuple(image_size)
        self.sizes = level_sizes(self.image_size, schedule.scales)
        self.levels = [_Level(self.model, self.names, style_loss, losses, schedule, s) for s in self.sizes]

    # ----------------------------------------------------------- targets

    def _targets(self, level: _Level, sources: np.ndarray, indices: Sequence[int],
                 content_weights=None, contents: frozenset[int] = frozenset(),
                 wanted: set[int] | None = None) -> dict[int, tuple]:
        """{source index: (content features, style representation, content weights or None)} at
        ``level``'s size. ``content_weights(indices, images)`` → one (n, h_l, w_l, N_l) array per
        content layer (e.g. LRP relevance weights), computed once per level for the sources in
        ``contents`` only (a pure style reference needs none).
        ``wanted``: skip the chunks of ``indices`` holding none of these (a rank's share); the
        chunks themselves stay those of the whole list, so every target is computed in the same
        batch as in a single-process run and comes out bit for bit the same."""
        b = self.schedule.batch_size
        if not len(indices):
            return {}
        small = resize(sources[list(indices)], level.size)
        out = {}
        for start in range(0, len(indices), b):
            if wanted is not None and wanted.isdisjoint(indices[start:start + b]):
                continue
            chunk = small[start:start + b]
            pad = np.concatenate([chunk, np.repeat(chunk[-1:], b - len(chunk), axis=0)])
            content, style = level.features(pad[..., None])
            content = [c.numpy() for c in content]
            style = [[r.numpy() for r in rep] for rep in style]
            idx_chunk = list(indices[start:start + len(chunk)])
            rows = [i for i, idx in enumerate(idx_chunk) if idx in contents] if content_weights is not None else []
            weights = content_weights(np.asarray(idx_chunk)[rows], chunk[rows]) if rows else None
            at = {i: k for k, i in enumerate(rows)}
            for i, idx in enumerate(idx_chunk):
                out[idx] = ([c[i] for c in content], [tuple(r[i] for r in rep) for rep in style],
                            [w[at[i]] for w in weights] if i in at else None)
        return out

    def _batch_targets(self, cache: dict, jobs: list[Job]):
        """(content targets, style targets, content weights or None) of a batch, stacked per layer."""
        def per_content_layer(slot: int) -> list[np.ndarray]:
            return [np.stack([cache[j.content][slot][k] for j in jobs]) for k in range(len(self.losses.content_layers))]

        style = []
        for k in range(len(self.losses.style_layers)):
            combined = [self.style_loss.combine([cache[s][1][k] for s in j.styles]) for j in jobs]
            style.append([np.stack([c[r] for c in combined]) for r in range(len(combined[0]))])
        return per_content_layer(0), style, per_content_layer(2) if self.losses.weighted_content else None

    # ----------------------------------------------------------- run

    def run(self, jobs: Sequence[Job], sources: np.ndarray, seed: int = 0,
            progress: bool | None = None, desc: str = "nst", content_weights=None,
            batches: Sequence[int] | None = None) -> Iterator[Shard]:
        """Yield one Shard per batch of ``jobs``; ``sources`` (N, H, W) in [0, 1] are indexed by
        the jobs. ``seed`` drives the stochastic style estimators (same for every image).
        ``content_weights``: see :meth:`_targets`; required when the losses weight the content.
        ``batches``: run only these batches (index = start // batch_size) of the whole list, as
        a Horovod rank does with its share (bench.distributed); results equal the full run's."""
        from tqdm import tqdm

        if sources.shape[1:] != self.image_size:
            raise AugbenchError(f"engine built for {self.image_size} images, got {sources.shape[1:]}")
        if self.losses.weighted_content and content_weights is None:
            raise AugbenchError("these losses weight the content loss: pass content_weights to run()")
        jobs = list(jobs)
        b = self.schedule.batch_size
        starts = list(range(0, len(jobs), b)) if batches is None else [i * b for i in batches]
        mine = [j for start in starts for j in jobs[start:start + b]]
        needed = sorted({j.content for j in jobs} | {s for j in jobs for s in j.styles})
        # explicit, once, before any TF op: a non-finite source refuses its jobs and never enters TF
        nonfinite = frozenset(needed[i] for i in nonfinite_rows(sources[needed])) if needed else frozenset()
        needed = [i for i in needed if i not in nonfinite]
        wanted = None if batches is None else {j.content for j in mine} | {s for j in mine for s in j.styles}
        weighted = content_weights if self.losses.weighted_content else None
        contents = frozenset(j.content for j in jobs)
        caches = [self._targets(level, sources, needed, weighted, contents, wanted) for level in self.levels]
        # progress None: a bar only on a terminal (tqdm's own rule); True/False force it on/off
        bar = tqdm(total=len(mine), unit="img", desc=desc, disable=None if progress is None else not progress,
                   mininterval=1.0, dynamic_ncols=True, leave=False)
        try:
            for start in starts:
                real = jobs[start:start + b]
                refused = [refusal(j, nonfinite) for j in real]
                if not any(refused):
                    batch = real + [real[-1]] * (b - len(real))
                    shard = self._run_batch(batch, sources, caches, seed, bar)
                    bar.update(len(real))
                    yield Shard(real, shard[0][:len(real)], {k: v[:len(real)] for k, v in shard[1].items()},
                                shard[2][:len(real)], shard[3][:len(real)])
                    continue
                yield self._refused_batch(real, refused, sources, caches, seed, bar)
                bar.update(len(real))
        finally:
            bar.close()

    def _refused_batch(self, real: list[Job], refused: list[str], sources: np.ndarray, caches: list[dict],
                       seed: int, bar) -> Shard:
        """A batch with refused jobs: the accepted ones run as a batch of their own (padded as
        usual, so each comes out as it would without the refused ones); the refused ones get NaN
        images and losses, ``ok`` false and their reason — the optimiser never sees them."""
        keep = [k for k, r in enumerate(refused) if not r]
        images = np.full((len(real), *self.image_size), np.nan, np.float32)
        losses = {k: np.full(len(real), np.nan, np.float32) for k in LOSS_KEYS}
        ok, reasons = np.zeros(len(real), bool), list(refused)
        if keep:
            accepted = [real[k] for k in keep]
            batch = accepted + [accepted[-1]] * (self.schedule.batch_size - len(accepted))
            out, result, good, why = self._run_batch(batch, sources, caches, seed, bar)
            images[keep] = out[:len(keep)]
            for name in LOSS_KEYS:
                losses[name][keep] = result[name][:len(keep)]
            ok[keep] = good[:len(keep)]
            for k, r in zip(keep, why, strict=False):
                reasons[k] = r
        return Shard(real, images, losses, ok, reasons)

    def gradient_balance(self, jobs: Sequence[Job], sources: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
        """Gradient norms of the weighted content and style terms at the first iteration (the init of
        the coarsest level) of each job of one batch: ``{"content": (n,), "style": (n,)}``. With
        ``init: content`` the content gradient is 0 there; use ``init: noise`` to compare both."""
        jobs = list(jobs)
        b = self.schedule.batch_size
        if not 1 <= len(jobs) <= b:
            raise AugbenchError(f"gradient_balance takes one batch: 1 to {b} jobs, got {len(jobs)}")
        if self.losses.weighted_content:
            raise AugbenchError("gradient_balance does not take relevance-weighted content losses")
        batch = jobs + [jobs[-1]] * (b - len(jobs))
        level = self.levels[0]
        needed = sorted({j.content for j in batch} | {s for j in batch for s in j.styles})
        cache = self._targets(level, sources, needed)
        content, style, _ = self._batch_targets(cache, batch)
        lr = np.full(b, self.schedule.learning_rate, np.float32)
        level.start_batch(self._init(batch, sources, level.size), content, style, lr, seed)
        return {k: v[:len(jobs)] for k, v in level.term_gradients().items()}

    def trace(self) -> None:
        """Trace every level's functions now (otherwise the first batch does it), so that a
        timing can tell model build and tracing apart from compute (bench.distributed)."""
        import tensorflow as tf

        b = self.schedule.batch_size
        for level in self.levels:
            level.features.get_concrete_function(tf.TensorSpec((b, *level.size, 1), tf.float32))
            level.steps.get_concrete_function(tf.TensorSpec((), tf.int32))
            level.evaluate.get_concrete_function()

    def _run_batch(self, batch: list[Job], sources: np.ndarray, caches: list[dict], seed: int, bar):
        import tensorflow as tf

        current = None
        lr = self.schedule.learning_rate * np.array([j.lr_scale for j in batch], np.float32)
        for li, (level, cache, its) in enumerate(zip(self.levels, caches, self.schedule.iterations, strict=True)):
            if current is None:
                current = self._init(batch, sources, level.size)
            else:
                current = resize(current, level.size)
            content, style, weights = self._batch_targets(cache, batch)
            level.start_batch(current, content, style, lr, seed, weights)
            done = 0
            while done < its:
                chunk = min(STEPS_PER_CALL, its - done)
                level.steps(tf.constant(chunk, tf.int32))
                done += chunk
                if len(self.levels) > 1:
                    bar.set_postfix_str(f"level {li + 1}/{len(self.levels)} it {done}/{its}", refresh=False)
            current = level.x.numpy()[..., 0]
        result = {k: v.numpy() for k, v in self.levels[-1].evaluate().items()}
        nonfinite = result.pop("nonfinite") | ~np.isfinite(current).all(axis=(1, 2))
        result["initial"] = result.pop("first")
        diverged = ~nonfinite & ~(result["total"] <= self.schedule.divergence_ratio * np.abs(result["grey"]))
        reasons = ["non-finite loss, gradient or image" if nf else
                   ("diverged (final loss above a mid-grey image's)" if dv else "")
                   for nf, dv in zip(nonfinite, diverged, strict=True)]
        return current.astype(np.float32), result, ~(nonfinite | diverged), reasons

    def _init(self, batch: list[Job], sources: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        if self.schedule.init == "content":
            return resize(sources[[j.content for j in batch]], size)
        # Gatys et al. 2016 §3: white-noise initialisation; one generator per job seed.
        return np.stack([np.random.default_rng(j.seed).random(size, dtype=np.float32) for j in batch])


_ENGINES: collections.OrderedDict = collections.OrderedDict()
_ENGINE_CACHE_SIZE = 4


def get_engine(arch: str, weights, pooling: str, style_loss: StyleLoss, losses: LossConfig, schedule: Schedule,
               image_size: tuple[int, int]) -> NSTEngine:
    """An engine for these settings, reused when the same settings come again in this process
    (tracing the step function of VGG19 takes seconds). ``iterations`` and the learning rate
    are not baked into the graph, but they are part of the key for simplicity."""
    key = (arch, weights, pooling, type(style_loss).__name__, tuple(sorted(style_loss.describe().items())),
           losses, schedule, tuple(image_size))
    if key in _ENGINES:
        _ENGINES.move_to_end(key)
        return _ENGINES[key]
    engine = NSTEngine(arch, weights, pooling, style_loss, losses, schedule, image_size)
    _ENGINES[key] = engine
    while len(_ENGINES) > _ENGINE_CACHE_SIZE:
        _ENGINES.popitem(last=False)
    return engine
