"""Neural style transfer engine shared by the ``nst-*`` augmenters.

- :mod:`bench.nst.encoders`: encoder registry (``vgg19``, ``resnet50``), weights
  (``imagenet | <path> | domain | random``), the NST feature model.
- :mod:`bench.nst.losses`: content loss, Gram / MMD (linear, poly, Gaussian) / BN style losses.
- :mod:`bench.nst.optim`: per-image Adam and L-BFGS on a batch variable.
- :mod:`bench.nst.engine`: :class:`NSTEngine`, B images per fixed-shape ``tf.function``.
- :mod:`bench.nst.sampling`: content/style pair plans (all-within-class, k-per-content, cross-class).
- :mod:`bench.nst.transfer`: plan → engine → retries → provenance (what augmenters call).
- :mod:`bench.nst.histogram`: histogram specification (mr²NST).
- :mod:`bench.nst.domain`: the ``domain`` encoder trained by the ``encoder`` stage.

Importing this package does not import TensorFlow.
"""

from bench.nst.encoders import (
           ENCODERS,
           WeightsSource,
           get_encoder_spec,
           register_encoder,
           resolve_encoder_weights,
)
from bench.nst.engine import Job, LossConfig, NSTEngine, Schedule, Shard, get_engine
from bench.nst.losses import BNStyle, GramStyle, MMDStyle, StyleLoss, make_style_loss
from bench.nst.sampling import Plan, plan_pairs, select
from bench.nst.transfer import TransferConfig, style_transfer

__all__ = ["ENCODERS", "BNStyle", "GramStyle", "Job", "LossConfig", "MMDStyle", "NSTEngine", "Plan", "Schedule",
           "Shard", "StyleLoss", "TransferConfig", "WeightsSource", "get_encoder_spec", "get_engine",
           "make_style_loss", "plan_pairs", "register_encoder", "resolve_encoder_weights", "select",
           "style_transfer"]
