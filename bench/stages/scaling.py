"""scaling: one NST augmentation method (and, separately, one classifier's training) under
Horovod with np = 1, 2, 4, 8 processes; speedup/efficiency tables and a plot.

Each run is a fresh ``horovodrun -np N --gloo augbench augment ...`` (bench.distributed.launch)
into ``--work``/augment-npN, with nothing to resume from. Its wall time T_p is measured around
the launcher, so it includes process start-up; rank 0's meta.json splits it per rank into
``startup`` (spawn to a ready Horovod), ``build`` (encoder build and tracing), ``compute``
(optimisation), ``io`` (loading, shard files, merge, outputs) and ``wait`` (idle at the end of
an attempt while other ranks finish), and records each rank's CPU seconds: ``cpu_speedup`` = np = 1's CPU
seconds over the busiest rank's is what the split of the work allows with a core per process,
which the wall-time speedup falls short of when other jobs share the machine. Every run's
images are compared with np = 1's.

Writes to ``--out``: ``speedup.csv``/``speedup.md`` (the layout of Panigrahi et al. 2024,
Table 3: np, T_p, T_1, speedup T_1/T_p, efficiency = speedup/np; that table writes S = T_p/T_s,
the inverse of what it prints), ``speedup.png`` (speedup against np with the ideal line;
Panigrahi's points for reference), ``scaling.json`` (every run, the machine's core count) and,
with ``scaling.classifier``, ``speedup_train.csv``/``.md``: that classifier's training on np = 1's
images for ``scaling.train_epochs`` epochs, data parallel (batch_size per process, learning
rate × np). A run with more processes than cores, or
more threads in all, is labelled oversubscribed in every one of them. ``scaling.json`` is written last.
dvc.yaml sets ``--out data/scaling/report`` (inside ``--work``, the stage's one output); the report
stage copies the files into ``reports/``.

With ``--skip-if-off`` and ``scaling.enabled: false`` the stage removes an earlier run's output and
writes only ``--work``/switched_off.json (how dvc.yaml switches it off).
"""

from __future__ import annotations

import argparse
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from bench.config import Params
from bench.distributed import cpu_cores, launch
from bench.io import load_npz, read_json, write_json, write_text
from bench.lock import LOCK_NAME
from bench.stages.common import (
    OPTIONAL_REPORTS,
    add_params_args,
    add_skip_if_off_arg,
    enabled_params,
    log,
    not_switched_off,
    switched_off,
    writing,
)

# Panigrahi et al. 2024, Table 3 (../shared/papers/panigrahi-2024-nst-lrp-horovod-bus-augmentation.txt):
# NST augmentation time in seconds on 1-8 A100 GPUs (one process each).
PANIGRAHI_TABLE3 = {1: 3771.53, 2: 1953.60, 4: 1166.73, 6: 847.10, 8: 739.65}
PHASES = ("startup", "build", "compute", "io", "wait")


def passthrough(args: argparse.Namespace) -> list[str]:
    """The params options of this command, for the stage commands it launches."""
    out = ["--params", str(Path(args.params).resolve())]
    if args.profile:
        out += ["--profile", args.profile]
    for item in args.overrides:
        out += ["--set", item]
    return out


def run_augment(params: Params, n: int, work: Path, common: list[str], prepared: str,
                encoder: str | None, threads: int | None) -> dict:
    out = work / f"augment-np{n}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(out.parent / (out.name + ".shards"), ignore_errors=True)  # a timing run resumes nothing
    command = ["augment", *common, "--prepared", prepared, "--method", params.scaling.method, "--out", str(out)]
    if params.scaling.factor:
        command += ["--set", f"augment.methods.{params.scaling.method}.factor={params.scaling.factor}"]
    if encoder:
        command += ["--encoder", encoder]
    result = launch(n, command, out.parent / (out.name + ".shards"), threads=threads, echo=False)
    meta = read_json(out / "meta.json")
    dist = meta["distributed"]
    row = {"stage": "augment", "np": n, "seconds": round(result.seconds, 2),
           **{p: dist["phases_max"].get(p, 0.0) for p in PHASES},
           "cpu_max": dist["phases_max"].get("cpu"), "cpu_total": round(sum(r.get("cpu", 0.0)
                                                                            for r in dist["phases_by_rank"]), 2),
           "images": meta["n_synthetic"], "images_per_s": round(meta["n_synthetic"] / result.seconds, 3),
           "threads_per_process": dist["threads_per_process"], "cores": dist["cores"],
           "oversubscribed": dist["oversubscribed"], "backend": dist["backend"]}
    log.info("scaling: np=%d augment %.1fs (%s)", n, result.seconds,
             ", ".join(f"{p} {row[p]:.1f}" for p in PHASES))
    return row


def run_train(params: Params, n: int, work: Path, common: list[str], prepared: str, augmented: Path,
              threads: int | None) -> dict:
    """One classifier's training on np processes (data parallel, learning rate × np)."""
    name, out = params.scaling.classifier, work / f"train-np{n}"
    shutil.rmtree(out, ignore_errors=True)
    command = ["train", *common, "--prepared", prepared, "--augmented", str(augmented), "--classifier", name,
               "--seed", "0", "--out", str(out)]
    if params.scaling.train_epochs:
        command += ["--set", f"train.classifiers.{name}.epochs={params.scaling.train_epochs}"]
    result = launch(n, command, out.parent / (out.name + ".shards"), threads=threads, echo=False)
    meta = read_json(out / "meta.json")
    dist = meta["distributed"]
    seen = meta["training_set"]["n_total"] * meta["epochs_run"]
    row = {"stage": "train", "np": n, "seconds": round(result.seconds, 2),
           **{p: dist["phases_max"].get(p, 0.0) for p in PHASES},
           "images": seen, "images_per_s": round(seen / result.seconds, 3),
           "threads_per_process": dist["threads_per_process"], "cores": dist["cores"],
           "oversubscribed": dist["oversubscribed"], "backend": dist["backend"],
           "global_batch": dist["global_batch_size"]}
    log.info("scaling: np=%d train %.1fs", n, result.seconds)
    return row


def same_images(a: Path, b: Path) -> bool:
    x, y = load_npz(a / "synthetic.npz"), load_npz(b / "synthetic.npz")
    return bool(np.array_equal(x["images"], y["images"]) and np.array_equal(x["labels"], y["labels"])
                and (a / "provenance.jsonl").read_bytes() == (b / "provenance.jsonl").read_bytes())


def speedup_table(rows: list[dict]) -> pd.DataFrame:
    """Panigrahi Table 3's columns: np, T_p, T_1, speedup = T_1/T_p, efficiency = speedup/np."""
    frame = pd.DataFrame(rows).sort_values("np").reset_index(drop=True)
    t1 = float(frame.loc[frame["np"] == 1, "seconds"].iloc[0])
    frame.insert(frame.columns.get_loc("seconds") + 1, "t1", t1)
    frame.insert(frame.columns.get_loc("t1") + 1, "speedup", (t1 / frame["seconds"]).round(3))
    frame.insert(frame.columns.get_loc("speedup") + 1, "efficiency", (frame["speedup"] / frame["np"]).round(3))
    if "cpu_max" in frame and frame["cpu_max"].notna().all():
        # T_1's CPU seconds over the busiest rank's: the speedup this split of the work allows when every
        # process has a core to itself (wall-time speedup under load from other jobs falls short of it)
        cpu1 = float(frame.loc[frame["np"] == 1, "cpu_max"].iloc[0])
        frame["cpu_speedup"] = (cpu1 / frame["cpu_max"]).round(3)
    return frame


def markdown(frame: pd.DataFrame, title: str) -> str:
    show = frame.rename(columns={"seconds": "T_p (s)", "t1": "T_1 (s)", "speedup": "speedup T_1/T_p",
                                 "efficiency": "efficiency", "images_per_s": "images/s"})
    show["oversubscribed"] = show["oversubscribed"].map({True: "yes (oversubscribed)", False: "no"})
    return f"{title}\n\n{show.to_markdown(index=False)}\n"


def speedup_plot(path: Path, frame: pd.DataFrame, cores: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    top = max(max(frame["np"]), 8)
    ax.plot([1, top], [1, top], "--", color="grey", label="ideal (speedup = np)")
    paper = sorted(PANIGRAHI_TABLE3.items())
    ax.plot([n for n, _ in paper], [PANIGRAHI_TABLE3[1] / t for _, t in paper], "s:", color="tab:orange",
            label="Panigrahi 2024 Table 3 (A100 GPUs)")
    fit = frame[~frame["oversubscribed"]]
    over = frame[frame["oversubscribed"]]
    ax.plot(fit["np"], fit["speedup"], "o-", color="tab:blue", label=f"this run ({cores} cores)")
    if len(over):
        ax.plot(over["np"], over["speedup"], "x", color="tab:red", markersize=9, label="oversubscribed")
    ax.axvline(cores, color="tab:blue", alpha=0.2)
    ax.set_xlabel("processes (np)")
    ax.set_ylabel("speedup T_1 / T_p")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def scale(params: Params, common: list[str], prepared: str, encoder: str | None, work: Path, out: Path,
          nps: list[int] | None = None) -> pd.DataFrame:
    nps = sorted(set(nps or params.scaling.np))
    threads = params.scaling.threads_per_process
    rows = []
    for n in nps:
        rows.append(run_augment(params, n, work, common, prepared, encoder, threads))
        if n != nps[0]:
            rows[-1]["identical_to_np1"] = same_images(work / f"augment-np{nps[0]}", work / f"augment-np{n}")
        else:
            rows[-1]["identical_to_np1"] = True
    frame = speedup_table(rows)
    cores = cpu_cores()
    method = params.scaling.method
    title = (f"NST augmentation ({method}, profile {params.profile}) under Horovod on {cores} cores, "
             f"{threads or 'cores // np'} thread(s) per process")
    out.mkdir(parents=True, exist_ok=True)
    frame.to_csv(out / "speedup.csv", index=False)
    write_text(out / "speedup.md", markdown(frame, f"### {title}"))
    speedup_plot(out / "speedup.png", frame, cores, f"{method}, {params.profile}: speedup vs processes")
    record = {"cores": cores, "machine": platform.processor() or platform.machine(),
              "python": sys.version.split()[0], "method": method, "profile": params.profile,
              "threads_per_process": threads, "runs": frame.to_dict(orient="records")}
    if params.scaling.classifier:
        trained = speedup_table([run_train(params, n, work, common, prepared, work / f"augment-np{nps[0]}", threads)
                                 for n in nps])
        trained.to_csv(out / "speedup_train.csv", index=False)
        write_text(out / "speedup_train.md", markdown(trained, f"### Training {params.scaling.classifier} "
                   f"({params.scaling.train_epochs or 'profile'} epoch(s), learning rate × np) under Horovod on "
                   f"{cores} cores"))
        record["train"] = {"classifier": params.scaling.classifier, "runs": trained.to_dict(orient="records")}
    else:  # the files exist either way (declared DVC outputs)
        pd.DataFrame(columns=["stage", "np", "seconds", "t1", "speedup", "efficiency"]).to_csv(
            out / "speedup_train.csv", index=False)
        write_text(out / "speedup_train.md", "Training was not timed (scaling.classifier: null).\n")
    write_json(out / "scaling.json", record)
    return frame


def stale_outputs(work: Path, out: Path) -> list[Path]:
    """What an earlier run left: every timed run under ``work``, the tables under ``out`` (and ``out``
    itself when it lies inside ``work`` and holds nothing else)."""
    found = [*sorted(work.glob("augment-np*")), *sorted(work.glob("train-np*")),
             *(out / name for name in OPTIONAL_REPORTS["scaling"])]
    if out.resolve().is_relative_to(work.resolve()) and out.resolve() != work.resolve():
        names = {*OPTIONAL_REPORTS["scaling"], LOCK_NAME}
        if out.is_dir() and all(p.name in names for p in out.iterdir()):
            found.append(out)
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="augbench scale", description=__doc__.splitlines()[0])
    add_params_args(parser)
    parser.add_argument("--prepared", default="data/prepared")
    parser.add_argument("--encoder", default=None, metavar="DIR", help="the encoder stage's output (weights: domain)")
    parser.add_argument("--work", default="data/scaling", help="where each run writes (default data/scaling)")
    parser.add_argument("--out", default="reports",
                        help="folder for speedup.csv/.md/.png and scaling.json (dvc.yaml: data/scaling/report)")
    parser.add_argument("--np", dest="nps", type=int, nargs="+", default=None,
                        help="process counts (default: scaling.np in params)")
    add_skip_if_off_arg(parser, "scaling", "--work")
    args = parser.parse_args(argv)
    params = enabled_params(args, "scaling", parser.prog)
    work, out = Path(args.work), Path(args.out)
    if params is None:
        with writing(work):
            switched_off("scaling", work, stale_outputs(work, out))
        return 0
    not_switched_off(work)
    frame = scale(params, passthrough(args), args.prepared, args.encoder, work, out, args.nps)
    print(markdown(frame, "speedup"))
    return 0
