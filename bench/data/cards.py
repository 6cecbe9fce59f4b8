"""Dataset cards: one YAML file per dataset in ``datasets/`` at the project root.

A card says where a dataset comes from, how to cite it, its licence, its layout and
classes, how to check that a copy is the expected one, and its known defects. The prepare
stage records the card (name, citation, licence, whether the copy matched) in
``meta.json``; ``augbench validate --card NAME PATH`` prints it and checks the copy.

Fields (typed below; an unknown or missing field is an error naming the card file and the
field): ``name`` (= the file's stem), ``title``, ``source`` (``inputs``: the
``dataset.source`` values that read it; ``url`` or ``generator``), ``citation``, ``doi``
(optional), ``licence``, ``layout``, ``classes`` (class name as the input has it -> what it
holds), ``params`` (optional: the ``dataset:`` section of params.yaml for it, checked like
params.yaml), ``checksums`` (``verify``: how to check a copy; ``copies``: known copies with
per-class ``counts``, ``split_counts``, a file ``md5``/``sha256`` or a ``manifest_sha256``)
and ``known_defects``.

The manifest digest of a folder (:func:`manifest_digest`) is the SHA-256 of the lines
``<relative path>\\t<SHA-256 of the file>\\n`` of every image the folder scan uses, sorted by
path: it changes when a file is added, removed, renamed or altered.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bench.data.loader import Scan
from bench.data.sources import SOURCES, Source
from bench.errors import ConfigError, DataError, printable
from bench.io import file_digest
from bench.typed import from_dict, require, suggest

log = logging.getLogger("augbench")

CARD_SUFFIXES = (".yaml", ".yml")
_HEX = {"md5": 32, "sha256": 64, "manifest_sha256": 64}


@dataclass(frozen=True)
class CardSource:
    """Where the data comes from. ``inputs``: the ``dataset.source`` values that read it."""

    inputs: list[str]
    url: str | None = None
    generator: str | None = None  # the module that makes it (a generated dataset)

    def check(self, path: str) -> None:
        require(len(self.inputs) > 0, f"{path}.inputs", "must name at least one dataset.source",
                f"one or more of {', '.join(SOURCES)}")
        for i, kind in enumerate(self.inputs):
            require(kind in SOURCES, f"{path}.inputs.{i}", f"{kind!r} is not a dataset source",
                    suggest(kind, SOURCES) or f"one of {', '.join(SOURCES)}")
        require(bool(self.url or self.generator), path, "needs a url (downloaded data) or a generator (generated data)")


@dataclass(frozen=True)
class CardCopy:
    """One known copy of the data, and the values that identify it."""

    description: str
    file: str | None = None  # the file name the md5/sha256 belong to
    md5: str | None = None
    sha256: str | None = None
    manifest_sha256: str | None = None
    counts: dict[str, int] = field(default_factory=dict)  # images per class
    split_counts: dict[str, int] = field(default_factory=dict)  # images per official split

    def check(self, path: str) -> None:
        for key, size in _HEX.items():
            value = getattr(self, key)
            require(value is None or bool(re.fullmatch(f"[0-9a-f]{{{size}}}", value)), f"{path}.{key}",
                    f"must be {size} lower-case hex digits, got {value!r}")
        require(bool(self.md5 or self.sha256 or self.manifest_sha256 or self.counts), path,
                "names nothing to check a copy by", "give md5, sha256, manifest_sha256 or counts")
        require(not (self.md5 or self.sha256) or bool(self.file), f"{path}.file",
                "md5/sha256 need the file name they belong to")
        for key in ("counts", "split_counts"):
            for name, n in getattr(self, key).items():
                require(n >= 0, f"{path}.{key}.{name}", "must be >= 0")

    def identifiers(self) -> list[str]:
        """What this copy can be checked by, for printing."""
        found = [f"{k} {getattr(self, k)}" for k in ("md5", "sha256", "manifest_sha256") if getattr(self, k)]
        found += [f"{k} {getattr(self, k)}" for k in ("counts", "split_counts") if getattr(self, k)]
        return found


@dataclass(frozen=True)
class Checksums:
    verify: str  # how to check a copy, in words
    copies: list[CardCopy] = field(default_factory=list)

    def check(self, path: str) -> None:
        require(bool(self.verify.strip()), f"{path}.verify", "must say how to check a copy")


@dataclass(frozen=True)
class DatasetCard:
    name: str
    title: str
    source: CardSource
    citation: str
    licence: str
    layout: str
    classes: dict[str, str]
    checksums: Checksums
    known_defects: list[str]
    doi: str | None = None
    params: dict[str, Any] = field(default_factory=dict)  # the dataset: section of params.yaml for it

    def check(self, path: str) -> None:
        for key in ("name", "title", "citation", "licence", "layout"):
            require(bool(getattr(self, key).strip()), key, "must not be empty")
        require(len(self.classes) >= 2, "classes", f"must name at least two classes, got {list(self.classes)}")
        for i, copy in enumerate(self.checksums.copies):
            unknown = sorted(set(copy.counts) - set(self.classes))
            require(not unknown, f"checksums.copies.{i}.counts", f"{unknown} are not in classes {list(self.classes)}")
        require(all(d.strip() for d in self.known_defects), "known_defects", "has an empty entry")
        if self.params:
            self.dataset_params()

    def dataset_params(self):
        """``params`` as a validated :class:`bench.config.DatasetParams` (errors name ``params.<key>``)."""
        from bench.config import DatasetParams

        section = dict(self.params)
        kind = section.get("source", self.source.inputs[0])
        require(kind in self.source.inputs, "params.source", f"{kind!r} is not one of source.inputs {self.source.inputs}")
        if kind != "phantom":
            # the path is the user's own copy: a stand-in of the right kind lets the rest be checked
            section.setdefault("path", {"medmnist": "copy.npz", "csv": "copy.csv"}.get(kind, "copy"))
        section.setdefault("source", kind)
        section.setdefault("name", self.name)
        require(section["name"] == self.name, "params.name", f"must be the card's name {self.name!r}")
        return from_dict(DatasetParams, section, "params")

    @property
    def summary(self) -> str:
        """'title — citation; licence', for logs and report headers."""
        return f"{self.title} — {self.citation}; licence: {self.licence}"


# --- finding and reading cards ------------------------------------------------------------------

def card_folders() -> list[Path]:
    """Where cards are looked for: ``./datasets`` (the project being run), then the
    ``datasets/`` folder beside this package's source (a checkout of augbench), then the copies
    of those cards that the installed package carries (``bench/defaults/datasets``)."""
    here = Path(__file__).resolve()
    folders = [Path.cwd() / "datasets", here.parents[2] / "datasets", here.parents[1] / "defaults" / "datasets"]
    out: list[Path] = []
    for folder in folders:
        if folder.is_dir() and all(not folder.samefile(f) for f in out):
            out.append(folder)
    return out


def list_cards(folders: Sequence[Path] | None = None) -> list[Path]:
    """Every card file, first folder first, one per name."""
    found: dict[str, Path] = {}
    for folder in card_folders() if folders is None else folders:
        for path in sorted(Path(folder).iterdir()) if Path(folder).is_dir() else []:
            if path.suffix in CARD_SUFFIXES and not path.name.startswith("."):
                found.setdefault(path.stem.casefold(), path)
    return list(found.values())


def find_card(name: str, folders: Sequence[Path] | None = None) -> Path | None:
    """The card file for dataset ``name`` (file stem, compared case-insensitively), or None."""
    return next((p for p in list_cards(folders) if p.stem.casefold() == str(name).casefold()), None)


def load_card(path: str | os.PathLike) -> DatasetCard:
    """Read and validate a card; every problem is a :class:`DataError` naming the file and field."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "dataset card not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"cannot read the dataset card ({exc})") from None
    except yaml.YAMLError as exc:
        raise DataError(path, f"not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise DataError(path, f"a dataset card must be a mapping of fields, got {type(data).__name__}")
    try:
        card = from_dict(DatasetCard, data)
    except ConfigError as exc:
        raise DataError(path, f"field {exc.key}: {exc.problem}", exc.hint) from None
    if card.name.casefold() != path.stem.casefold():
        raise DataError(path, f"field name: {card.name!r} differs from the file name {path.stem!r}",
                        "a card is found by its file name: make them the same")
    return card


def resolve_card(ref: str, folders: Sequence[Path] | None = None) -> tuple[DatasetCard, Path]:
    """The card ``ref`` names: a file (a path, or a name ending in .yaml/.yml) or a dataset name."""
    if Path(ref).suffix in CARD_SUFFIXES or os.sep in ref or "/" in ref:
        return load_card(ref), Path(ref)
    path = find_card(ref, folders)
    if path is None:
        names = [p.stem for p in list_cards(folders)]
        where = ", ".join(printable(f) for f in (card_folders() if folders is None else folders)) or "no datasets/ folder"
        raise DataError(ref, f"no dataset card with this name in {where}",
                        suggest(ref, names) or f"cards: {', '.join(names) or 'none'}")
    return load_card(path), path


# --- checking a copy against a card -------------------------------------------------------------

def manifest_digest(scan: Scan, root: Path) -> tuple[dict[str, int], str]:
    """(images per class, manifest SHA-256) of the images a scan found (see the module docstring)."""
    lines = []
    for rec in scan.records:
        rel = Path(os.path.relpath(rec.path, root)).as_posix()
        lines.append(f"{rel}\t{file_digest(Path(rec.path), 'sha256')}\n")
    digest = hashlib.sha256("".join(sorted(lines)).encode("utf-8", "backslashreplace")).hexdigest()
    return dict(Counter(r.label for r in scan.records)), digest


def verify_copy(card: DatasetCard, source: Source) -> dict:
    """Check ``source``'s copy against the card's known copies, by what the input is: a MedMNIST
    ``.npz`` by the file's md5/sha256 (and, when that differs, says whether its official split
    sizes equal a copy's ``split_counts``); a folder, a CSV list or the phantom by the manifest
    digest and per-class counts of the images it lists (:func:`manifest_digest`, rooted at
    ``source.root``: the folder, the CSV's folder, the written phantom). Returns
    ``{"status": "match" | "counts match" | "no match" | "not checked", "copy", "detail"}``;
    ``counts match`` means the same classes with the same image counts, but no digest to compare."""
    if source.kind == "medmnist":
        return _verify_file(card, source.origin, official_counts(source))
    return _verify_images(card, source.scan, source.root)


def _verify_file(card: DatasetCard, origin: Path, split_counts: dict[str, int] | None) -> dict:
    by_file = [c for c in card.checksums.copies if c.md5 or c.sha256]
    md5, sha = file_digest(origin, "md5"), file_digest(origin, "sha256")
    if not by_file:
        return {"status": "not checked", "copy": None,
                "detail": f"the card lists no file checksum; this file: md5 {md5}, sha256 {sha}"}
    for c in by_file:
        if c.md5 == md5 or c.sha256 == sha:
            return {"status": "match", "copy": c.description, "detail": f"md5 {md5}"}
    detail = f"md5 {md5} is none of the card's ({', '.join(c.file or '?' for c in by_file)})"
    same = [c.description for c in by_file if split_counts and c.split_counts == split_counts]
    if same:
        detail += f"; its split sizes {split_counts} equal those of {same[0]} (another version or a re-saved file?)"
    return {"status": "no match", "copy": None, "detail": detail}


def _verify_images(card: DatasetCard, scan: Scan, root: Path) -> dict:
    by_images = [c for c in card.checksums.copies if c.manifest_sha256 or c.counts]
    counts, digest = manifest_digest(scan, root)
    if not by_images:
        return {"status": "not checked", "copy": None, "detail": f"the card lists no manifest digest or "
                f"counts; this copy: counts {counts}, manifest sha256 {digest}"}
    for c in by_images:
        if c.manifest_sha256 == digest:
            return {"status": "match", "copy": c.description, "detail": f"manifest sha256 {digest}"}
    for c in by_images:  # the same classes with the same counts: no digest, so not proof of the same files
        if not c.manifest_sha256 and c.counts == counts:
            return {"status": "counts match", "copy": c.description,
                    "detail": f"per-class counts {counts}; the card lists no manifest digest for this copy "
                              f"(this copy's: {digest})"}
    return {"status": "no match", "copy": None,
            "detail": f"counts {counts}, manifest sha256 {digest}: none of the card's copies"}


# --- what is recorded and shown -----------------------------------------------------------------

def card_record(card: DatasetCard, path: Path, verification: dict | None = None) -> dict:
    """The card's part of the prepare stage's meta.json."""
    return {"name": card.name, "title": card.title, "citation": card.citation, "doi": card.doi,
            "licence": card.licence, "file": str(path), "verification": verification}


def card_line(record: dict) -> str:
    """'title — citation (doi); licence: ...', from :func:`card_record`'s dict (a report header line)."""
    doi = f" doi:{record['doi']}" if record.get("doi") else ""
    return f"{record['title']} — {record['citation']}{doi}; licence: {record['licence']}"


def card_text(card: DatasetCard, path: Path) -> str:
    """The card as Markdown, for ``augbench validate``."""
    lines = [f"# Dataset card: {card.title} ({printable(path)})", "",
             f"- Citation: {card.citation}" + (f" doi:{card.doi}" if card.doi else ""),
             f"- Licence: {card.licence}",
             f"- Source: {card.source.url or card.source.generator} (dataset.source: {', '.join(card.source.inputs)})",
             f"- Layout: {' '.join(card.layout.split())}",
             "- Classes: " + "; ".join(f"{k}: {v}" for k, v in card.classes.items())]
    if card.params:
        lines.append("- params.yaml: dataset: " + ", ".join(f"{k}: {v}" for k, v in card.params.items()))
    lines.append(f"- Checking a copy: {' '.join(card.checksums.verify.split())}")
    lines.extend(f"  - {c.description}: {'; '.join(c.identifiers())}" for c in card.checksums.copies)
    lines.append("- Known defects:" + ("" if card.known_defects else " none recorded"))
    lines.extend(f"  - {' '.join(d.split())}" for d in card.known_defects)
    return "\n".join(lines) + "\n"


def official_counts(source: Source) -> dict[str, int] | None:
    """Images per official split of an input that has them (MedMNIST), else None."""
    return dict(Counter(source.splits.values())) if source.splits else None


def _cards_listing_file(name: str, kind: str) -> tuple[DatasetCard, Path] | None:
    """The card (read by ``kind``) one of whose known copies is the file ``name``, or None."""
    for path in list_cards():
        try:
            card = load_card(path)
        except DataError as exc:  # a broken card of another dataset must not stop this one
            log.warning("skipping the dataset card %s: %s", printable(path), exc)
            continue
        if kind in card.source.inputs and any(c.file == name for c in card.checksums.copies):
            return card, path
    return None


def dataset_card(dataset) -> tuple[DatasetCard, Path] | None:
    """The card of ``params.dataset``, found before anything is read: the card ``dataset.card``
    names (an error when it cannot be read); else ``datasets/<dataset.name>.yaml`` when it reads
    ``dataset.source``; else, for a file input (MedMNIST), the card one of whose known copies has
    the file's name (``breastmnist_128.npz``). None when no card applies."""
    if dataset.card:
        card, path = resolve_card(dataset.card)
        if dataset.source not in card.source.inputs:
            log.warning("dataset card %s lists dataset.source %s, and this dataset is read as %r",
                        printable(path), "/".join(card.source.inputs), dataset.source)
        return card, path
    path = find_card(dataset.name)
    if path is not None:
        card = load_card(path)
        if dataset.source in card.source.inputs:
            return card, path
        log.info("the dataset card %s is read by dataset.source %s, not %r: not used (set dataset.name, "
                 "or dataset.card to use it anyway)", printable(path), "/".join(card.source.inputs), dataset.source)
    if dataset.source == "medmnist" and dataset.path:
        found = _cards_listing_file(Path(dataset.path).name, dataset.source)
        if found:
            log.info("dataset card %s: found by the file name %s", printable(found[1]), Path(dataset.path).name)
            return found
    log.info("no dataset card for %r (datasets/%s.yaml; docs/datasets.md)", dataset.name, dataset.name)
    return None


def dataset_classes(dataset, found: tuple[DatasetCard, Path] | None) -> tuple[list[str], str]:
    """``(classes, positive)`` the prepare stage uses. A MedMNIST file's labels are numbers, so
    ``classes[k]`` names label ``k``: without ``dataset.classes`` they come from the card's
    ``params`` (an error when no card gives them); given ones must equal the card's, or a
    swapped order would silently swap the positive class. Other inputs name their classes
    themselves (folders, CSV labels): ``dataset.classes`` is used as given."""
    if dataset.source != "medmnist":
        return list(dataset.classes), dataset.positive
    card, path = found if found else (None, None)
    given = card_classes(card, "medmnist") if card else None
    given_positive = card.params.get("positive") if given else None
    where = f"the dataset card {printable(path)}"
    if dataset.classes is None:
        if given is None:
            why = f"{where} gives no params.classes for it" if card else "no dataset card applies"
            raise ConfigError("dataset.classes", f"dataset.source medmnist needs the class names ({why}): label k "
                              f"of {printable(dataset.path)} is named classes[k]",
                              "set dataset.classes: [name of label 0, name of label 1], e.g. [malignant, benign] "
                              "for BreastMNIST (label 0 = malignant), or dataset.name/dataset.card to a card")
        classes = given
        log.info("dataset.classes from %s: %s (label k = classes[k])", where, classes)
    else:
        classes = list(dataset.classes)
        if given is not None and classes != given:
            raise ConfigError("dataset.classes", f"{classes} disagrees with {where}, which names label k of the "
                              f"file classes[k] = {given}",
                              f"remove dataset.classes to use the card's, or set it to {given}")
    positive = dataset.positive if dataset.positive is not None else given_positive
    if positive is None:
        raise ConfigError("dataset.positive", f"no positive class given, and {where if card else 'no card'} "
                          "names none", f"set dataset.positive to one of {classes}")
    if positive not in classes:
        raise ConfigError("dataset.positive", f"{positive!r} is not one of {classes}", f"one of {classes}")
    if given_positive is not None and positive != given_positive:
        raise ConfigError("dataset.positive", f"{positive!r} disagrees with {where} (positive: {given_positive!r})",
                          f"remove dataset.positive to use the card's, or set it to {given_positive!r}")
    return classes, positive


def check_copy(found: tuple[DatasetCard, Path], source: Source) -> dict:
    """The card record of the prepared dataset, with ``source``'s copy checked against the card's
    known copies (:func:`verify_copy`)."""
    card, path = found
    verification = verify_copy(card, source)
    log.info("dataset card %s: copy %s (%s)", card.name, verification["status"], verification["detail"])
    return card_record(card, path, verification)


def card_report(card: DatasetCard, path: Path, source: Source) -> str:
    """:func:`card_text` and the check of ``source``'s copy against the card (``augbench validate``)."""
    found = verify_copy(card, source)
    copy = f" {found['copy']}" if found["copy"] else ""
    lines = [card_text(card, path).rstrip("\n"), f"- This copy: {found['status']}{copy} ({found['detail']})"]
    if source.kind not in card.source.inputs:
        lines.append(f"- Note: the card lists dataset.source {', '.join(card.source.inputs)}; this copy is read as "
                     f"{source.kind!r}")
    return "\n".join(lines) + "\n"


def card_classes(card: DatasetCard, kind: str) -> list[str] | None:
    """The class list the card's ``params`` give for input ``kind`` (None when it gives none)."""
    if not card.params or card.params.get("source", card.source.inputs[0]) != kind:
        return None
    return list(card.params.get("classes") or []) or None
