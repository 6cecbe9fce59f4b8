"""run: the whole pipeline (prepare → encoder → augment → train/zoo → evaluate → report) in one process.

The same stage functions DVC calls, in the same order, into one work folder —
for a second dataset (``--set dataset.path=...``) beside the DVC-tracked run,
and for machines without DVC. Re-running skips stages whose outputs are
complete and were made with the same parameters (their ``meta.json`` matches).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from bench.config import Params
from bench.io import file_digest, read_json
from bench.stages import augment, encoder, evaluate, prepare, report, train
from bench.stages.common import add_params_args, load_prepared, log, params_from_args
from bench.typed import to_dict


def _done(folder: Path, **expected) -> bool:
    """True when ``folder`` holds complete output made from ``expected``; otherwise its
    ``meta.json`` (written last by every stage) is removed so that a crash in the re-run
    can never leave old metadata beside new arrays."""
    meta = folder / "meta.json"
    if not meta.is_file():
        return False
    found = read_json(meta)
    if all(found.get(k) == v for k, v in expected.items()):
        return True
    meta.unlink()
    return False


def run_pipeline(params: Params, workdir: Path) -> str:
    started = time.perf_counter()
    prepared_dir, encoder_dir, augmented, runs, reports = (
        workdir / d for d in ("prepared", "encoder", "augmented", "runs", "reports"))
    if not _done(prepared_dir, inputs=prepare.prepare_inputs(params)):
        prepare.prepare(params, prepared_dir)
    prepared = load_prepared(prepared_dir)
    if not _done(encoder_dir, params=to_dict(params.encoder), upstream=prepared.digest):
        encoder.train_encoders(params, prepared, encoder_dir)
        _clear_keras()
    encoder_digest = file_digest(encoder_dir / "meta.json")
    for method in params.matrix.methods:
        if not _done(augmented / method, params=to_dict(params.method_params(method)), seed=params.augment.seed,
                     upstream=prepared.digest, encoder_upstream=encoder_digest):
            augment.augment(params, prepared, method, augmented / method, encoder_dir=encoder_dir)
            _clear_keras()
    for method, clf in params.matrix.pairs():
        upstream = [prepared.digest, file_digest(augmented / method / "synthetic.npz")]
        for seed in params.matrix.seeds:
            out = evaluate.run_dir(runs, method, clf, seed)
            if not _done(out, params=to_dict(params.classifier_params(clf)), seed=seed, upstream=upstream):
                train.run(params, prepared, augmented / method, clf, seed, out)
                _clear_keras()
    evaluate.evaluate(params, runs, reports)
    text = report.report(params, prepared_dir, augmented, runs, reports)
    log.info("pipeline finished in %.0fs; report: %s", time.perf_counter() - started, reports / "results.md")
    return text


def _clear_keras() -> None:
    import tensorflow as tf

    tf.keras.backend.clear_session()


def _names(text: str) -> str:
    """``a, b`` → ``[a,b]``, the list form ``--set`` reads; empty → ``[]``."""
    return "[" + ",".join(n.strip() for n in text.split(",") if n.strip()) + "]"


def shortcut_overrides(args: argparse.Namespace) -> list[str]:
    """The ``--set`` overrides that ``--data``/``--methods``/``--classifiers``/``--zoo``/``--seeds``
    stand for. They come before the explicit ``--set``s, so an explicit one wins."""
    out = []
    if args.data:
        folder = Path(args.data)
        out += ["dataset.source=folder", f"dataset.path={args.data}",
                f"dataset.name={folder.resolve().name or folder}"]
    for flag, key in (("methods", "matrix.methods"), ("classifiers", "matrix.classifiers"), ("zoo", "matrix.zoo"),
                      ("seeds", "matrix.seeds")):
        value = getattr(args, flag)
        if value is not None:
            out.append(f"{key}={_names(value)}")
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="augbench run", description=__doc__.splitlines()[0],
        epilog="Example: augbench run --workdir busi-run --data ../shared/datasets/busi "
               "--methods none,geometric-flipping,nst-gatys --classifiers resnet50 --zoo '' --seeds 0,1")
    add_params_args(parser)
    parser.add_argument("--workdir", required=True, help="folder for every output of this run")
    parser.add_argument("--data", metavar="FOLDER",
                        help="a folder-per-class dataset (= --set dataset.source=folder dataset.path=FOLDER "
                             "dataset.name=<its name>)")
    parser.add_argument("--methods", metavar="A,B", help="augmentation methods, comma-separated (= matrix.methods)")
    parser.add_argument("--classifiers", metavar="A,B",
                        help="classifiers trained on every method, comma-separated (= matrix.classifiers)")
    parser.add_argument("--zoo", metavar="A,B",
                        help="classifier variants trained on 'none' only, comma-separated; '' for none (= matrix.zoo)")
    parser.add_argument("--seeds", metavar="0,1", help="training seeds, comma-separated (= matrix.seeds)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.overrides = shortcut_overrides(args) + list(args.overrides)
    run_pipeline(params_from_args(args), Path(args.workdir))
    return 0
