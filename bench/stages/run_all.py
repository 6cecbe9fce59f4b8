"""run: the whole pipeline (prepare → encoder → augment → train/zoo → evaluate → pseudolabel → quality → report),
without editing YAML.

With ``--workdir DIR``: the same stage functions DVC calls, in the same order,
in this process, into one work folder — for a second dataset beside the
DVC-tracked run, and for machines without DVC. Re-running skips stages whose
outputs are complete and were made with the same parameters (their
``meta.json`` matches).

Without ``--workdir``, in a DVC repository (``dvc.yaml`` in the current folder):
``dvc repro`` when no parameter is overridden, otherwise ``dvc exp run`` with
one ``--set-param`` per override. ``dvc exp run --set-param`` writes the values
into ``params.yaml`` in the workspace, where they stay after the run as the
experiment's state (``dvc exp show`` lists it; ``git checkout params.yaml``
or ``dvc exp apply`` moves between experiments).

Either way the parameters are validated before anything runs.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from bench import training
from bench.config import Params, load_params, load_raw, resolve
from bench.errors import AugbenchError
from bench.io import file_digest, read_json
from bench.quiet import is_quiet, quiet_mode
from bench.stages import augment, encoder, evaluate, prepare, pseudolabel, quality, report, train
from bench.stages.common import (
    OPTIONAL_REPORTS,
    add_params_args,
    clear_keras,
    load_prepared,
    log,
    params_from_args,
    writing,
)
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


# What the optional stages write into the report folder; a stage switched off leaves none of its
# files there (an earlier run's would otherwise reappear in the report). Here the stages write their
# tables straight into the work folder's reports/ (under DVC: into their own folders, which the report
# stage copies from; bench.stages.report.copy_extras).
PSEUDOLABEL_REPORTS = OPTIONAL_REPORTS["pseudolabel"]
QUALITY_REPORTS = OPTIONAL_REPORTS["quality"]


def _switched_off(stage: str, reports: Path, names: tuple[str, ...]) -> None:
    stale = [reports / n for n in names if (reports / n).is_file()]
    for path in stale:
        path.unlink()
    log.info("stage %s: switched off (%s.enabled: false)%s", stage, stage,
             f"; removed an earlier run's {', '.join(p.name for p in stale)}" if stale else "")


def train_cells(params: Params) -> list[tuple[str, str, str, list[int]]]:
    """(run name, augmented method, classifier, seeds) of every train cell, as dvc.yaml's train,
    zoo and control-aa stages define them: each method × classifier and each zoo classifier on
    ``none`` over ``matrix.seeds``, and the A/A control (``none`` on other seeds) per classifier."""
    m = params.matrix
    cells = [(method, method, clf, list(m.seeds)) for method, clf in m.pairs()]
    if "none" in m.methods:
        cells += [(evaluate.AA_METHOD, "none", clf, params.controls.aa_seeds(m.seeds)) for clf in m.classifiers]
    return cells


def run_pipeline(params: Params, workdir: Path) -> str:
    started = time.perf_counter()
    prepared_dir, encoder_dir, augmented, runs, reports = (
        workdir / d for d in ("prepared", "encoder", "augmented", "runs", "reports"))
    if not _done(prepared_dir, inputs=prepare.prepare_inputs(params)):
        prepare.prepare(params, prepared_dir)
    prepared = load_prepared(prepared_dir)
    if not _done(encoder_dir, params=to_dict(params.encoder), upstream=prepared.digest):
        encoder.train_encoders(params, prepared, encoder_dir)
        clear_keras()
    encoder_digest = file_digest(encoder_dir / "meta.json")
    for method in params.matrix.methods:
        if not _done(augmented / method, params=to_dict(params.method_params(method)), seed=params.augment.seed,
                     mode=params.method_mode(method),
                     upstream=prepared.digest, encoder_upstream=encoder_digest):
            augment.augment(params, prepared, method, augmented / method, encoder_dir=encoder_dir)
            clear_keras()
    for name, method, clf, seeds in train_cells(params):
        upstream = [prepared.digest, file_digest(train.upstream_file(augmented / method))]
        reuse = training.ModelReuse()  # the seeds of a cell share one built and traced network, as under DVC
        for seed in seeds:
            out = evaluate.run_dir(runs, name, clf, seed)
            if not _done(out, params=to_dict(params.classifier_params(clf)), seed=seed, upstream=upstream,
                         budget=params.train.budget):
                train.run(params, prepared, augmented / method, clf, seed, out, reuse=reuse, explain=seed == seeds[0])
        clear_keras()
    evaluate.evaluate(params, runs, reports)
    # a fold finished with the same key is kept (bench.stages.pseudolabel); None: the stage is off
    folds = workdir / "pseudolabel" if params.pseudolabel.enabled else None
    if folds is not None:
        pseudolabel.pseudolabel(params, prepared, pseudolabel.read_groups(prepared_dir, prepared), folds, reports)
        clear_keras()
    else:  # with the fold-0 sample grid the report copied (unless a matrix method has that name)
        grid = () if params.pseudolabel.method in params.matrix.methods else (
            f"grids/{params.pseudolabel.method}.png",)
        _switched_off("pseudolabel", reports, (*PSEUDOLABEL_REPORTS, *grid))
    if params.quality.enabled:
        quality.measure(params, prepared, augmented, reports, encoder_dir, folds)
        clear_keras()
    else:
        _switched_off("quality", reports, QUALITY_REPORTS)
    text = report.report(params, prepared_dir, augmented, runs, reports, folds)
    log.info("pipeline finished in %.0fs; report: %s", time.perf_counter() - started, reports / "results.md")
    return text


def _in_file(raw: dict, dotted: str) -> bool:
    node = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def dvc_sets(overrides: list[str], raw: dict, profile: str) -> list[str]:
    """``--set`` overrides → dvc ``-S`` values that the stages will see. Each is written to the
    base section (which dvc.yaml's ``${matrix...}`` reads) and, when the active ``profile``
    sets the same key, to ``profiles.<profile>`` too, since a profile value wins over the base
    one. A key missing from params.yaml gets dvc's ``+`` prefix, which adds it."""
    out = []
    for kv in overrides:
        key, value = (part.strip() for part in kv.split("=", 1))
        targets = [key]
        if key != "profile" and _in_file(raw.get("profiles", {}).get(profile) or {}, key):
            targets.append(f"profiles.{profile}.{key}")
        out += [f"{'' if _in_file(raw, t) else '+'}{t}={value}" for t in targets]
    return out


def profile_matrix(raw: dict, profile: str | None) -> list[str]:
    """A profile's own ``matrix`` lists as overrides: dvc.yaml's ``${matrix...}`` reads the base
    section only, so without them ``--profile paper`` would run the base (quick) lists."""
    section = ((raw.get("profiles") or {}).get(profile) or {}).get("matrix") or {} if profile else {}
    return [f"matrix.{key}=[{','.join(map(str, value))}]" for key, value in section.items()]


def dvc_command(args: argparse.Namespace, raw: dict) -> list[str]:
    """``dvc repro`` when nothing is overridden, else ``dvc exp run -S k=v ...`` (the profile
    as ``-S profile=P``, then the shortcuts, then the explicit ``--set``s)."""
    overrides = ([f"profile={args.profile}"] if args.profile else []) + profile_matrix(raw, args.profile) \
        + list(args.overrides)
    quiet = ["--quiet"] if args.quiet or is_quiet() else []  # `augbench -q run` too
    if not overrides:
        return ["dvc", "repro", *quiet]
    sets = dvc_sets(overrides, raw, args.profile or raw.get("profile", ""))
    return ["dvc", "exp", "run", *quiet, *(arg for kv in sets for arg in ("-S", kv))]


def check_dvc_mode(args: argparse.Namespace, folder: Path) -> None:
    """DVC mode needs dvc.yaml here, the ``dvc`` program, and the params file the stages read."""
    if not (folder / "dvc.yaml").is_file():
        raise AugbenchError(f"{folder / 'dvc.yaml'}: not found, so there is no DVC pipeline to run here; run "
                            "augbench run from the repository root, or add --workdir DIR to run every stage "
                            "in this process without DVC")
    if shutil.which("dvc") is None:
        raise AugbenchError("the dvc program is not installed (pip install dvc); add --workdir DIR to run every "
                            "stage in this process without DVC")
    if Path(args.params).resolve() != (folder / "params.yaml").resolve():
        raise AugbenchError(f"--params {args.params}: the DVC stages read {folder / 'params.yaml'}; pass "
                            "--params only with --workdir, or change parameters with --set KEY=VALUE")


def run_dvc(args: argparse.Namespace, folder: Path) -> int:
    """Validate the parameters as the stages will see them, then print and run the dvc command."""
    check_dvc_mode(args, folder)
    # An optional stage switched off (<stage>.enabled: false) still runs under DVC, with --skip-if-off:
    # it records itself as switched off in its data folder, and the report leaves its section out.
    load_params(folder / "params.yaml", args.profile, args.overrides)
    command = dvc_command(args, load_raw(folder / "params.yaml"))
    print(shlex.join(command), flush=True)
    if args.dry_run:
        return 0
    started = time.perf_counter()
    code = subprocess.run(command, cwd=folder, check=False).returncode
    if code:
        print(f"augbench: error: {shlex.join(command)} failed (exit code {code}); its output above names "
              "the stage", file=sys.stderr)
        return code
    print(f"augbench run: {' '.join(command[:3 if command[1] == 'exp' else 2])} finished in "
          f"{time.perf_counter() - started:.0f}s; report: {folder / 'reports' / 'results.md'}")
    return 0


def run_workdir(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    workdir = Path(args.workdir)
    if args.dry_run:
        print(f"would run in-process into {workdir}: profile {params.profile}, methods "
              f"{', '.join(params.matrix.methods)}, classifiers {', '.join(params.matrix.classifiers)}, "
              f"seeds {', '.join(map(str, params.matrix.seeds))}")
        return 0
    started = time.perf_counter()
    with writing(workdir, "this work folder"):
        run_pipeline(params, workdir)
    print(f"augbench run: finished in {time.perf_counter() - started:.0f}s; report: "
          f"{workdir / 'reports' / 'results.md'}")
    return 0


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
        if args.methods is None:
            out += phantom_only_dropped(args)
    for flag, key in (("methods", "matrix.methods"), ("classifiers", "matrix.classifiers"), ("zoo", "matrix.zoo"),
                      ("seeds", "matrix.seeds")):
        value = getattr(args, flag)
        if value is not None:
            out.append(f"{key}={_names(value)}")
    return out


def phantom_only_dropped(args: argparse.Namespace) -> list[str]:
    """For ``--data FOLDER`` without ``--methods``: the matrix's methods less the positive control,
    which draws fresh phantom images and has nothing to draw from on a folder dataset (an
    override, with a note on stderr; none when the matrix has no such method)."""
    from bench import registry

    raw = load_raw(Path(args.params))
    profile = args.profile or raw.get("profile")
    matrix = {**(raw.get("matrix") or {}), **(((raw.get("profiles") or {}).get(profile) or {}).get("matrix") or {})}
    methods = list(matrix.get("methods") or [])
    sections = (resolve(raw, profile).get("augment") or {}).get("methods") or {}  # variants name their plugin
    dropped = registry.positive_controls(methods, lambda m: (sections.get(m) or {}).get("method", m))
    if not dropped:
        return []
    print(f"augbench run: --data: leaving out {', '.join(dropped)} (the positive control adds fresh phantom "
          "images, which a folder dataset cannot supply)", file=sys.stderr)
    return [f"matrix.methods={_names(','.join(m for m in methods if m not in dropped))}"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="augbench run", description=__doc__.splitlines()[0],
        epilog="Examples: augbench run --profile smoke --methods none,classical   (dvc exp run -S ...)\n"
               "          augbench run --dry-run --seeds 0,1,2                      (print the dvc command)\n"
               "          augbench run --workdir busi-run --data ../shared/datasets/busi --methods "
               "none,geometric-flipping,nst-gatys --classifiers resnet50 --zoo '' --seeds 0,1\n"
               "dvc exp run -S writes the values into params.yaml, where they stay after the run.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_params_args(parser)
    parser.add_argument("--workdir", metavar="DIR",
                        help="run every stage in this process into DIR (no DVC needed); without it, run the "
                             "DVC pipeline of the current folder (dvc repro, or dvc exp run -S when a parameter "
                             "is overridden)")
    parser.add_argument("--data", metavar="FOLDER",
                        help="a folder-per-class dataset (= --set dataset.source=folder dataset.path=FOLDER "
                             "dataset.name=<its name>)")
    parser.add_argument("--methods", metavar="A,B", help="augmentation methods, comma-separated (= matrix.methods)")
    parser.add_argument("--classifiers", metavar="A,B",
                        help="classifiers trained on every method, comma-separated (= matrix.classifiers)")
    parser.add_argument("--zoo", metavar="A,B",
                        help="classifier variants trained on 'none' only, comma-separated; '' for none (= matrix.zoo)")
    parser.add_argument("--seeds", metavar="0,1", help="training seeds, comma-separated (= matrix.seeds)")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate the parameters and print what would run (the dvc command), then stop")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no progress bars, no per-epoch lines, no INFO logs: warnings, errors and the "
                             "final summary line only (for CI)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.overrides = shortcut_overrides(args) + list(args.overrides)
    with quiet_mode(args.quiet):
        if args.workdir is not None:
            return run_workdir(args)
        return run_dvc(args, Path.cwd())
