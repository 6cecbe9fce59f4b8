"""Per-image optimisers for a batch of images held in one fixed-shape variable.

Both keep every statistic per image (learning rate, Adam moments, L-BFGS memory),
so an image's trajectory does not depend on which images share its batch. Their
state lives in variables created once per batch shape; ``reset`` zeroes it
between batches (no new variables, no retracing).

- :class:`Adam`: Kingma & Ba 2015, Algorithm 1, with bias correction.
- :class:`LBFGS`: the two-loop recursion (Nocedal & Wright 2006, Algorithm 7.4)
  with H₀ = (sᵀy / yᵀy)·I (their Eq. 7.20) and a fixed step, like
  ``torch.optim.LBFGS`` without line search (which Gatys' reference code uses):
  the first step is scaled by min(1, 1/‖g‖₁). Curvature pairs with sᵀy ≤ 1e-10
  are not stored (weight zero), as in ``torch.optim.LBFGS``.

Pixels are clipped to [0, 1] after every step. For L-BFGS the stored pair is the
step actually taken (after clipping), so its curvature information stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass

# torch.optim.LBFGS skips curvature pairs with yᵀs below this (tolerance_change-like guard).
LBFGS_MIN_CURVATURE = 1e-10


def _per_image_dot(a, b):
    import tensorflow as tf

    return tf.reduce_sum(a * b, axis=tf.range(1, tf.rank(a)))


def _expand(v, like):
    """(B,) → (B, 1, 1, 1) for broadcasting against images."""
    import tensorflow as tf

    return tf.reshape(v, tf.concat([tf.shape(v), tf.ones([tf.rank(like) - 1], tf.int32)], axis=0))


@dataclass(frozen=True)
class AdamConfig:
    # Kingma & Ba 2015, Algorithm 1 defaults.
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8


class Adam:
    def __init__(self, shape, config: AdamConfig):
        import tensorflow as tf

        self.config = config
        self.m = tf.Variable(tf.zeros(shape), trainable=False, name="adam_m")
        self.v = tf.Variable(tf.zeros(shape), trainable=False, name="adam_v")
        self.t = tf.Variable(0.0, trainable=False, name="adam_t")

    def reset(self) -> None:
        self.m.assign(tf_zeros_like(self.m))
        self.v.assign(tf_zeros_like(self.v))
        self.t.assign(0.0)

    def step(self, x, grad, lr) -> None:
        """One update of variable ``x`` (B, H, W, C) with per-image learning rates ``lr`` (B,)."""
        import tensorflow as tf

        c = self.config
        t = self.t.assign_add(1.0)
        m = self.m.assign(c.beta1 * self.m + (1.0 - c.beta1) * grad)
        v = self.v.assign(c.beta2 * self.v + (1.0 - c.beta2) * tf.square(grad))
        m_hat = m / (1.0 - tf.pow(c.beta1, t))
        v_hat = v / (1.0 - tf.pow(c.beta2, t))
        x.assign(tf.clip_by_value(x - _expand(lr, x) * m_hat / (tf.sqrt(v_hat) + c.epsilon), 0.0, 1.0))


class LBFGS:
    def __init__(self, shape, history: int):
        import tensorflow as tf

        self.history = int(history)
        mem = (self.history, *shape)
        self.s = tf.Variable(tf.zeros(mem), trainable=False, name="lbfgs_s")
        self.y = tf.Variable(tf.zeros(mem), trainable=False, name="lbfgs_y")
        self.rho = tf.Variable(tf.zeros((self.history, shape[0])), trainable=False, name="lbfgs_rho")
        self.gamma = tf.Variable(tf.ones((shape[0],)), trainable=False, name="lbfgs_gamma")
        self.x_prev = tf.Variable(tf.zeros(shape), trainable=False, name="lbfgs_x_prev")
        self.g_prev = tf.Variable(tf.zeros(shape), trainable=False, name="lbfgs_g_prev")
        self.k = tf.Variable(0, trainable=False, name="lbfgs_k")

    def reset(self) -> None:
        for var in (self.s, self.y, self.rho, self.x_prev, self.g_prev):
            var.assign(tf_zeros_like(var))
        self.gamma.assign(tf_ones_like(self.gamma))
        self.k.assign(0)

    def step(self, x, grad, lr) -> None:
        import tensorflow as tf

        k = self.k
        started = k > 0
        s, y = x - self.x_prev, grad - self.g_prev
        sy, yy = _per_image_dot(s, y), _per_image_dot(y, y)
        valid = tf.logical_and(started, sy > LBFGS_MIN_CURVATURE)
        slot = tf.math.floormod(k - 1, self.history)
        self.s[slot].assign(s)
        self.y[slot].assign(y)
        self.rho[slot].assign(tf.where(valid, 1.0 / tf.where(valid, sy, 1.0), 0.0))
        self.gamma.assign(tf.where(valid, sy / tf.where(valid, yy, 1.0), self.gamma))

        q, alphas = grad, []
        for i in range(self.history):  # newest pair first
            j = tf.math.floormod(k - 1 - i, self.history)
            alpha = self.rho[j] * _per_image_dot(self.s[j], q)
            q = q - _expand(alpha, q) * self.y[j]
            alphas.append((j, alpha))
        r = _expand(self.gamma, q) * q
        for j, alpha in reversed(alphas):  # oldest pair first
            beta = self.rho[j] * _per_image_dot(self.y[j], r)
            r = r + self.s[j] * _expand(alpha - beta, r)

        first = tf.minimum(1.0, 1.0 / tf.maximum(tf.reduce_sum(tf.abs(grad), axis=[1, 2, 3]), 1e-30))
        size = lr * tf.where(started, tf.ones_like(first), first)
        self.x_prev.assign(x)
        self.g_prev.assign(grad)
        x.assign(tf.clip_by_value(x - _expand(size, r) * r, 0.0, 1.0))
        self.k.assign_add(1)


def tf_zeros_like(var):
    import tensorflow as tf

    return tf.zeros(var.shape, var.dtype)


def tf_ones_like(var):
    import tensorflow as tf

    return tf.ones(var.shape, var.dtype)
