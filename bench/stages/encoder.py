"""encoder: train the ``domain`` NST encoder(s) on the training split only.

Only the architectures that the run reads are trained (the methods of ``matrix.methods``
through ``needs_encoders``, the scaling stage's method, the quality stage's domain features);
with none, only ``meta.json`` is written.

Writes ``<arch>_domain_notop.h5`` (Keras no-top layout) and ``<arch>_domain_head.npz``
(the classification head: GlobalAveragePooling2D → Dense kernel and bias) for each
encoder in ``encoder.archs`` and ``meta.json`` (written last): per encoder its initial
weights, epochs, training loss/accuracy, the sha256 of the training ids it saw
and of its weight file; the parameters; the prepared data's digest. NST methods
with ``weights: domain`` read this folder (``augbench augment --encoder DIR``).

Parameters come from the ``encoder`` section of params.yaml when the loaded
configuration has one, else from :class:`bench.nst.domain.EncoderParams`'
defaults (recorded in meta.json either way).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

from bench.config import Params
from bench.io import atomic_path, read_json, save_npz, write_json
from bench.stages.common import (
    Prepared,
    add_params_args,
    load_prepared,
    log,
    params_from_args,
    writing,
)
from bench.typed import from_dict, to_dict


def encoder_params(params: Params):
    from bench.nst.domain import EncoderParams

    section = getattr(params, "encoder", None)
    if isinstance(section, EncoderParams):
        return section
    return from_dict(EncoderParams, to_dict(section) if section is not None else {}, "encoder")


def needed_archs(params: Params) -> list[str]:
    """The encoder architectures that this run's stages read, in ``encoder.archs`` order: those of
    the methods of ``matrix.methods`` (``needs_encoders`` with their parameters), of the scaling
    stage's NST method when scaling is on, and the quality stage's ``domain_arch`` when quality is
    on with domain features possible (``feature_network`` domain or auto). Empty when none reads one."""
    from bench import registry

    def archs_of(name: str) -> tuple[str, ...]:
        return tuple(registry.get("augmenter", params.method_plugin(name))(params.method_params(name)).needs_encoders())

    wanted = set()
    for name in params.matrix.methods:
        wanted.update(archs_of(name))
    if params.scaling.enabled and params.scaling.method:
        wanted.update(archs_of(params.scaling.method))
    if params.quality.enabled and params.quality.feature_network != "inceptionv3":
        wanted.add(params.quality.domain_arch)
    known = list(encoder_params(params).archs)
    return [a for a in known if a in wanted] + sorted(wanted - set(known))


def train_encoders(params: Params, prepared: Prepared, out: Path, settings=None) -> dict:
    """Train the encoders on the training split: those of ``settings`` when given, else those
    that the run reads (:func:`needed_archs`; none at all when nothing uses a ``domain`` encoder: the
    folder then holds only meta.json, which says so). An encoder's weights do not depend on
    which others are trained: each is seeded from ``encoder.seed`` before it starts."""
    if settings is None:
        settings = dataclasses.replace(encoder_params(params), archs=needed_archs(params))
        if not settings.archs:
            log.info("encoder: no stage of this run reads a domain encoder; none trained")
    return write_encoders(prepared.subset("train"), out, settings, prepared.digest)


def finished(out: Path, settings, upstream: str, n_train: int) -> dict | None:
    """``out``'s meta.json when the folder already holds exactly the encoders of ``settings``,
    trained on this training split (``upstream``: the prepared data's digest), with their files
    unchanged (md5); else None. The stage re-runs when a parameter it lists changes (say the
    scaling stage is switched off) although the encoders it needs stay the same: it then keeps its
    files byte for byte (dvc.yaml: ``persist``), so that nothing downstream re-runs."""
    from bench.weights import md5

    meta_path = out / "meta.json"
    if not meta_path.is_file():
        return None
    try:
        meta = read_json(meta_path)
        same = (meta.get("params") == json.loads(json.dumps(to_dict(settings))) and meta.get("upstream") == upstream
                and meta.get("n_train") == n_train and sorted(meta.get("encoders", {})) == sorted(settings.archs))
        expected = {"meta.json"}
        for record in meta.get("encoders", {}).values():
            expected |= {record["file"], record["head_file"]}
            same = same and md5(out / record["file"]) == record["md5"] and md5(out / record["head_file"]) == record["head_md5"]
        present = {p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
        return meta if same and present == expected else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # unreadable or partial: train again


def write_encoders(train, out: Path, settings, upstream: str = "") -> dict:
    """Train every encoder of ``settings`` on ``train`` (an ImageSet: the training split) into ``out``."""
    from bench.nst.domain import train_domain_encoder
    from bench.nst.encoders import domain_head_name, domain_weights_name
    from bench.weights import md5

    kept = finished(out, settings, upstream, len(train))
    if kept is not None:
        log.info("encoder: %s already holds these encoders (%s), trained on this training split with these "
                 "settings; kept", out, ", ".join(settings.archs) or "none")
        return kept
    started = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    stale = out / "meta.json"
    if stale.exists():
        stale.unlink()  # never leave old metadata beside new weights
    for path in out.iterdir():  # an encoder of an earlier plan that this one leaves out
        if path.is_file() and path.suffix in (".h5", ".npz"):
            path.unlink()
    encoders = {}
    for arch in settings.archs:
        log.info("encoder %s: training on %d training images", arch, len(train))
        backbone, head, record = train_domain_encoder(arch, train, settings)
        path = out / domain_weights_name(arch)
        with atomic_path(path) as tmp:
            backbone.save_weights(str(tmp))
        head_path = out / domain_head_name(arch)
        save_npz(head_path, **head)
        encoders[arch] = {**record, "file": path.name, "md5": md5(path), "head_file": head_path.name,
                          "head_md5": md5(head_path)}
        log.info("encoder %s: train accuracy %.3f, loss %.4f, %.1fs (init %s)", arch, record["train_accuracy"],
                 record["train_loss"], record["seconds"], record["init"])
    meta = {"encoders": encoders, "params": to_dict(settings), "upstream": upstream,
            "n_train": len(train), "seconds": round(time.perf_counter() - started, 2)}
    write_json(out / "meta.json", meta)
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench encoder", description=__doc__.splitlines()[0])
    add_params_args(parser)
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    with writing(args.out):
        train_encoders(params_from_args(args), load_prepared(args.prepared), Path(args.out))
    return 0
