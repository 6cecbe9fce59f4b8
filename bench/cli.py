"""``augbench``: list and describe plugins, scaffold plugin packages, validate datasets, run pipeline stages.

``augbench --quiet COMMAND ...`` (or ``AUGBENCH_QUIET=1``) keeps warnings, errors and summary lines only."""

from __future__ import annotations

import argparse
import importlib
import sys

from bench import registry
from bench.errors import AugbenchError, RegistryError
from bench.quiet import filter_tensorflow_startup, is_quiet, quiet_mode
from bench.typed import describe_fields, suggest

STAGES = {"prepare": "bench.stages.prepare", "encoder": "bench.stages.encoder",
          "augment": "bench.stages.augment", "train": "bench.stages.train",
          "evaluate": "bench.stages.evaluate", "report": "bench.stages.report",
          "quality": "bench.stages.quality", "pseudolabel": "bench.stages.pseudolabel",
          "external": "bench.stages.external"}
# Commands with their own argument parsers, outside the pipeline.
TOOLS = {"bench-check": "bench.benchcheck:main_check", "bench-history": "bench.benchcheck:main_history",
         "launch": "bench.distributed:main_launch", "scale": "bench.stages.scaling:main",
         "init": "bench.project:main_init", "run": "bench.project:main_run",
         "predict": "bench.stages.external:main_predict",
         "code-digest": "bench.stages.code:main"}  # stage `code` (its name differs from the stage's, as scale's)


def cmd_list(args: argparse.Namespace) -> int:
    for kind in registry.GROUPS:
        print(f"{kind}s:")
        for name in registry.list_plugins(kind, args.pattern):
            plugin = registry.get(kind, name)
            print(f"  {name:<22} {getattr(plugin, 'summary', '')}")
    for failure in registry.failures():
        print(f"broken: {failure}", file=sys.stderr)
    return 0


def _find(name: str) -> tuple[str, type]:
    hits = [(kind, registry.get(kind, name)) for kind in registry.GROUPS if name in registry.list_plugins(kind)]
    if not hits:
        for kind in registry.GROUPS:  # a plugin that failed to load: say why
            if any(f.kind == kind and f.name == name for f in registry.failures()):
                registry.get(kind, name)
        every = [n for kind in registry.GROUPS for n in registry.list_plugins(kind)]
        hint = suggest(name, every) or f"known: {', '.join(sorted(every))}"
        raise RegistryError(f"no augmenter or classifier named {name!r}; {hint}")
    return hits[0]


def cmd_describe(args: argparse.Namespace) -> int:
    kind, plugin = _find(args.name)
    print(f"{args.name} ({kind}, {plugin.__module__}.{plugin.__qualname__})")
    if getattr(plugin, "summary", ""):
        print(f"  {plugin.summary}")
    if getattr(plugin, "paper", ""):
        print(f"  source: {plugin.paper}")
    if kind == "augmenter":
        print(f"  mode: {getattr(plugin, 'mode', 'append')}")
        modes = registry.modes_of(args.name)
        if len(modes) > 1:  # e.g. online: an augment.methods entry with `mode: online` (docs/online-augmentation.md)
            print(f"  modes: {', '.join(modes)} (params.yaml augment.methods.<name>.mode)")
    print("  parameters:")
    for f in describe_fields(plugin.Params):
        note = f"  [{f['source']}]" if f["source"] else ""
        print(f"    {f['name']:<24} {f['type']:<28} default {f['default']!r}{note}")
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from bench.data.cards import card_classes, card_report, resolve_card
    from bench.data.sources import kind_of_path, open_source
    from bench.data.validate import validate_records
    from bench.io import write_json, write_text

    kind = args.source or kind_of_path(args.path)  # a .npz is MedMNIST, a .csv a CSV list, else a folder
    card, card_path = resolve_card(args.card) if args.card else (None, None)
    classes = args.classes or (card_classes(card, kind) if card else None)
    with tempfile.TemporaryDirectory(prefix="augbench-validate-") as work:  # a MedMNIST file's PNGs
        source = open_source(kind, args.path, classes, Path(work) / "medmnist")
        _, report, _ = validate_records(source.scan, args.near_threshold, not args.keep_conflicts)
        if card:
            print(card_report(card, card_path, source))
    print(report.to_markdown(max_examples=args.examples))
    if args.json:
        write_json(args.json, report.to_dict())
    if args.markdown:
        write_text(args.markdown, report.to_markdown(max_examples=args.examples))
    return 0


def cmd_params(args: argparse.Namespace) -> int:
    import yaml

    from bench.config import get_dotted, load_params, params_record

    params = load_params(args.params, args.profile, args.overrides)
    record = params_record(params)
    if args.get:  # one value, e.g. for the Makefile: `augbench params --get scaling.enabled` → false
        record = get_dotted(record, args.get)
        if not isinstance(record, dict | list):
            print(yaml.safe_dump(record).removesuffix("\n...\n").rstrip("\n"))
            return 0
    print(yaml.safe_dump(record, sort_keys=False))
    return 0


def format_counts(counts: dict) -> str:
    """The text ``augbench params-count`` prints."""
    lines = [f"{counts['classifier']}, mode {counts['mode']}, input {counts['input_size']} px"]
    for key, label in (("trainable", "trainable"), ("non_trainable", "non-trainable"), ("total", "total"),
                       ("head", "head (trainable)")):
        lines.append(f"  {label:<18}{counts[key]:>14,}")
    if "drs" in counts:
        n = sum(g["blocks"] for g in counts["drs_groups"])
        lines.append(f"  {'DRS (trainable)':<18}{counts['drs']:>14,} = sum over {n} blocks of 2*H*W + 2*C:")
        for g in counts["drs_groups"]:
            lines.append(f"    {g['blocks']:>2} x (2*{g['h']}*{g['w']} + 2*{g['c']}) = {g['blocks']} x "
                         f"{g['per_block']:,} = {g['total']:,}")
    return "\n".join(lines)


def cmd_params_count(args: argparse.Namespace) -> int:
    import json

    from bench.counts import parameter_counts

    counts = parameter_counts(args.name, args.mode, args.input_size, args.weights)
    print(json.dumps(counts, indent=2) if args.json else format_counts(counts))
    return 0


def cmd_new_plugin(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bench import scaffold

    target, files = scaffold.create(args.name, args.kind, Path(args.out))
    note = scaffold.near_names(args.name)
    if note:
        print(f"augbench: note: {note}", file=sys.stderr)
    print(f"wrote {args.kind} plugin {args.name!r} to {target}/:")
    for path in files:
        print(f"  {path}")
    print(scaffold.next_steps(target, scaffold.Names(args.name, args.kind)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="augbench", description=__doc__.splitlines()[0])
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="before the command: no progress bars, no per-epoch lines, no INFO logs (also "
                             "AUGBENCH_QUIET=1, which the stages started by dvc inherit)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("list", help="registered augmentation methods and classifiers")
    p.add_argument("pattern", nargs="?", default="*", help="glob, e.g. 'geometric-*'")
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("describe", help="a plugin's parameters, defaults and their sources")
    p.add_argument("name")
    p.set_defaults(func=cmd_describe)
    p = sub.add_parser("validate", help="check a dataset (class folders, MedMNIST .npz or CSV list): bad files, "
                       "duplicates, conflicts; with --card, print its dataset card and check the copy against it")
    p.add_argument("path", help="a folder-per-class root, a MedMNIST .npz file or a CSV file (docs/datasets.md)")
    p.add_argument("--source", choices=("folder", "medmnist", "csv"),
                   help="how to read PATH (default: .npz medmnist, .csv csv, else folder)")
    p.add_argument("--classes", nargs="*", help="class folders / CSV labels to use (default: all; MedMNIST: the "
                   "names of labels 0 and 1, default the card's or 0 1)")
    p.add_argument("--card", help="dataset card: a name in datasets/ (e.g. busi) or a YAML file")
    p.add_argument("--near-threshold", type=int, default=4, help="pHash Hamming distance (default 4)")
    p.add_argument("--keep-conflicts", action="store_true", help="keep images whose duplicates carry another label")
    p.add_argument("--examples", type=int, default=10, help="example groups to print")
    p.add_argument("--json", help="also write the full report as JSON here")
    p.add_argument("--markdown", help="also write the Markdown report here")
    p.set_defaults(func=cmd_validate)
    p = sub.add_parser("params", help="print the resolved, validated parameters")
    p.add_argument("--params", default="params.yaml")
    p.add_argument("--profile", default=None)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--get", metavar="KEY", help="print only this value, e.g. scaling.enabled (true/false)")
    p.set_defaults(func=cmd_params)
    p = sub.add_parser("params-count", help="trainable / non-trainable parameters of a classifier in a transfer mode")
    p.add_argument("name", help="classifier plugin, e.g. drs-resnet101")
    p.add_argument("--mode", default=None, help="transfer mode (default: the plugin's default)")
    p.add_argument("--input-size", type=int, required=True, help="input size in px (raised to the minimum)")
    p.add_argument("--weights", default="none", help="weights to build with (default none; counts do not depend on it)")
    p.add_argument("--json", action="store_true", help="print the counts as JSON")
    p.set_defaults(func=cmd_params_count)
    p = sub.add_parser("new-plugin", help="scaffold an installable plugin package (entry point, typed "
                       "parameters, a working example, contract tests, README)",
                       description="Write OUT/augbench-NAME/: pyproject.toml with the entry point, the plugin "
                       "module with its parameter dataclass and a small working implementation (augmenter: random "
                       "gamma/contrast; classifier: a small Keras CNN), tests/test_plugin.py running augbench's "
                       "contract checks, and a README. Refuses a name already registered and a non-empty folder.")
    p.add_argument("name", help="plugin name as params.yaml will use it: lowercase letters, digits and hyphens, "
                   "e.g. gamma-contrast")
    p.add_argument("--kind", choices=tuple(registry.GROUPS), default="augmenter",
                   help="plugin kind (default: augmenter)")
    p.add_argument("--out", default=".", help="folder to create augbench-NAME/ in (default: the current folder)")
    p.set_defaults(func=cmd_new_plugin)
    for name in STAGES:
        p = sub.add_parser(name, help=f"pipeline stage '{name}' (see dvc.yaml)", add_help=False)
        p.set_defaults(stage=name)
    sub.add_parser("init", help="write a ready project (params.yaml, dvc.yaml, .gitignore, README.txt) into DIR",
                   add_help=False)
    sub.add_parser("run", help="the whole pipeline: write the options into the project's params.yaml, then "
                   "dvc repro (here, or in --workdir DIR, initialised when new)", add_help=False)
    sub.add_parser("bench-check", help="check benchmark ratios against tests/benchmarks/baseline.json",
                   add_help=False)
    sub.add_parser("bench-history", help="plot benchmark ratios over the runs saved in .benchmarks/",
                   add_help=False)
    sub.add_parser("launch", help="run a stage on N Horovod processes (horovodrun --gloo), naming any rank "
                   "that fails", add_help=False)
    sub.add_parser("scale", help="time NST augmentation under Horovod with np = 1, 2, 4, 8: speedup table "
                   "and plot (stage 'scaling')", add_help=False)
    sub.add_parser("code-digest", help="per augmentation method and per classifier, the sha256 of every file of "
                   "the code its augment or train stage runs: OUT/augment/<method>.json and OUT/train/<classifier>.json, "
                   "what augment@, train@, control-aa@ and zoo@ depend on (stage 'code')",
                   add_help=False)
    sub.add_parser("predict", help="score a kept model (a train run's folder) on your own images: per-image "
                   "probabilities, and the metrics when the set has the model's classes (docs/external.md)",
                   add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    filter_tensorflow_startup()  # first: before anything imports TensorFlow (bench.quiet, docs/console.md)
    argv = list(sys.argv[1:] if argv is None else argv)
    from bench.stages.common import setup_logging

    quiet = bool(argv) and argv[0] in ("-q", "--quiet")
    setup_logging()
    with quiet_mode(quiet or is_quiet()):
        return _dispatch(argv[1:] if quiet else argv)


def _dispatch(argv: list[str]) -> int:
    try:
        if argv and argv[0] in STAGES:
            return importlib.import_module(STAGES[argv[0]]).main(argv[1:])
        if argv and argv[0] in TOOLS:
            module, func = TOOLS[argv[0]].split(":")
            return getattr(importlib.import_module(module), func)(argv[1:])
        args = build_parser().parse_args(argv)
        return args.func(args)
    except AugbenchError as exc:
        print(f"augbench: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"augbench: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
