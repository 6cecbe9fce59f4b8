"""reports/index.html (bench/html_report.py), rendered from a copy of the committed reports/.

The unit tests parse the page; the browser test (slow) loads it in headless Chromium
over the DevTools protocol and skips where no Chromium binary is installed.
"""

from __future__ import annotations

import base64
import importlib.metadata as md
import json
import re
import shutil
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
import yaml
from markupsafe import escape

from bench import html_report, report_model
from bench.browser import find_chromium
from bench.config import load_params
from bench.errors import DataError

ROOT = Path(__file__).resolve().parents[1]
ALWAYS = ["provenance", "metrics", "significance", "classifiers", "parameters", "drs", "samples", "confusion",
          "papers", "files"]
# each optional section, in page order, with the report files (globs) whose presence brings it in
EXTRA_FILES = {"lrp": ("lrp.csv", "lrp/*.png"), "gan": ("figures/gan_*.png",), "pseudolabel": ("pseudolabel.csv",),
               "quality": ("quality.csv",), "speedup": ("speedup.csv", "speedup.png")}
OPTIONAL = [*EXTRA_FILES, "figures"]
HOSTILE = '<img src=x onerror="console.error(\'escaped?\')">&amp;'


class Page(HTMLParser):
    """What the tests look at: sections with their headings and contents, images, tables, links."""

    def __init__(self, text: str):
        super().__init__()
        self.sections: dict[str, list[str]] = {}
        self.images: list[dict] = []
        self.tables: list[dict] = []
        self.tags: list[tuple[str, dict]] = []
        self._section: str | None = None
        self._thead = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "section":
            self._section = attrs["id"]
            self.sections[self._section] = []
        elif self._section:
            self.sections[self._section].append(tag)
        if tag == "img":
            self.images.append(attrs)
        elif tag == "table":
            self.tables.append({"class": attrs.get("class", ""), "th": 0, "buttons": 0, "rows": 0, "cells": []})
        elif tag == "th" and self.tables:
            self.tables[-1]["th"] += 1
        elif tag == "button" and self.tables:
            self.tables[-1]["buttons"] += 1
        elif tag == "thead":
            self._thead = True
        elif tag == "tr" and self.tables and not self._thead:
            self.tables[-1]["rows"] += 1
        elif tag == "td" and self.tables:
            self.tables[-1]["cells"].append(attrs)

    def handle_endtag(self, tag):
        if tag == "section":
            self._section = None
        elif tag == "thead":
            self._thead = False


# A complete report folder of the one-seed matrix of every method with the classifier zoo (every
# optional section, DRS activation, the papers' rows), frozen here: the committed reports/ holds
# the default quick matrix only, without the zoo or most methods. The verdict section is tested on
# fabricated files (test_report_verdict.py) and in the pipeline test.
REPORT_FIXTURE = ROOT / "tests" / "data" / "report-every-method"


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    """A copy of the report fixture (never written to in place)."""
    dest = tmp_path / "reports"
    shutil.copytree(REPORT_FIXTURE, dest, ignore=shutil.ignore_patterns("index.html"))
    return dest


def render(folder: Path) -> tuple[str, Page]:
    path = html_report.write_html(folder)
    text = path.read_text(encoding="utf-8")
    return text, Page(text)


def pngs(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*.png") if "plots" not in p.parts]


def committed_sections(reports: Path) -> list[str]:
    """The committed report's sections: the fixed ones, plus each optional one whose CSV the
    pipeline wrote (LRP: the train stage explains every classifier; speedup: the scaling stage)."""
    present = [section for section, files in EXTRA_FILES.items() if any(any(reports.glob(f)) for f in files)]
    return ALWAYS[:-2] + present + ALWAYS[-2:]


@pytest.mark.parametrize("section", list(EXTRA_FILES))
def test_each_optional_section_needs_its_files(reports: Path, section: str):
    expected = committed_sections(reports)
    assert section in expected  # the committed report has every optional section's files
    for pattern in EXTRA_FILES[section]:
        for path in reports.glob(pattern):
            path.unlink()
    _, page = render(reports)
    assert list(page.sections) == [s for s in expected if s != section]


def test_sections_of_the_committed_report(reports: Path):
    _, page = render(reports)
    assert list(page.sections) == committed_sections(reports)
    assert "lrp" in page.sections  # reports/lrp.csv and reports/lrp/*.png are committed
    for section, tags in page.sections.items():
        assert tags[0] == "h2" and len(tags) > 2, f"section {section} is an empty heading"
    assert not (set(OPTIONAL) - set(committed_sections(reports))) & set(page.sections)


def test_header_carries_the_provenance(reports: Path):
    text, _ = render(reports)
    commit = json.loads((reports / "provenance.json").read_text())["git"]["commit"][:12]
    header = text[text.index('id="provenance"'):text.index('id="metrics"')]
    train = next(line for line in (reports / "results.md").read_text(encoding="utf-8").splitlines()
                 if line.startswith("- **Splits**")).split("train: ")[1].split(";")[0]  # e.g. "benign 45, malignant 45"
    epochs = load_params(ROOT / "params.yaml", "quick").classifier_params("resnet50").epochs
    for needle in ("Dataset", "0 dropped for label conflicts", "Splits", f"train: {train}",
                   "Image size", "32 px", "<code>quick</code>", "seeds [0]", f"≤{epochs} epochs",
                   "resnet50: none (random initialisation)", "NST encoder", "iterations [15]", "Machine",
                   commit, "tensorflow", "2.15.1"):
        assert needle in header, needle


def test_every_image_is_embedded_and_decodes(reports: Path):
    text, page = render(reports)
    assert len(page.images) == len(pngs(reports)) >= 31 + len(list((reports / "lrp").glob("*.png")))
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,"), img.get("alt")
        assert base64.b64decode(img["src"].split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
        assert img["alt"]
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", text)
    assert not any(tag in ("link", "iframe", "object", "embed") or (tag == "script" and "src" in a)
                   for tag, a in page.tags)
    csp = next(a["content"] for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy")
    assert "default-src 'none'" in csp and "img-src data:" in csp


def test_tables_are_sortable_and_filled(reports: Path):
    _, page = render(reports)
    assert len(page.tables) >= 10
    for t in page.tables:
        assert t["class"] == "sortable" and t["th"] == t["buttons"] > 0 and t["rows"] > 0
        for td in t["cells"]:
            if "data-sort" in td:
                float(td["data-sort"])


def test_metrics_table_has_significance_against_none(reports: Path):
    text, _ = render(reports)
    metrics = text[text.index('id="metrics"'):text.index('id="significance"')]
    compared = pd.read_csv(reports / "comparisons.csv")
    holm = compared[(compared["method"] == "nst-mr2") & (compared["baseline_method"] == "none")]["delong_p_holm"]
    assert "p vs none (Holm)" in metrics and f"{holm.iloc[0]:.3g}" in metrics  # nst-mr2 vs none, Holm-adjusted
    significance = text[text.index('id="significance"'):text.index('id="classifiers"')]
    assert "Holm family: augmentation" in significance and "Holm family: classifier" in significance


@pytest.mark.parametrize(("text", "key"), [("0.910 ± 0.074", 0.91), ("23,542,786", 23542786.0),
                                           ("66.7 [54.2, 79.2]", 66.7), ("+0.028", 0.028), ("3.51e-282", 3.51e-282),
                                           ("4/4", 4.0), ("n/a", None), ("—", None), ("resnet50", None),
                                           ("1 process", None), ("101,471 = the DRS weights", None),
                                           ("2.15.1", None)])
def test_sort_keys(text: str, key: float | None):
    assert html_report.sort_key(text) == key


def set_header_text(reports: Path, label: str, text: str) -> None:
    """Append ``text`` to header item ``label`` in provenance.json (where the page reads it)."""
    prov = json.loads((reports / "provenance.json").read_text())
    item = next(i for i in prov[report_model.REPORT_KEY]["items"] if i["label"] == label)
    item["text"] = f"{item['text']} {text}"
    (reports / "provenance.json").write_text(json.dumps(prov))


def test_text_is_escaped(reports: Path):
    table = pd.read_csv(reports / "table.csv")
    table.loc[0, "Method"] = HOSTILE
    table.to_csv(reports / "table.csv", index=False)
    set_header_text(reports, "Image size", HOSTILE)
    text, page = render(reports)
    assert HOSTILE not in text
    assert text.count(str(escape(HOSTILE))) == 2  # the metrics table's cell and the header's item
    assert all(img["src"].startswith("data:") for img in page.images)


NAMES = ("<script>x</script>", "a&b")  # a method and a classifier, as users may name their plugins


def test_user_names_are_escaped_everywhere(reports: Path):
    """File, method, classifier and plugin names come from users: in table cells, figure captions
    and alt texts, file links and prose they are text, never markup."""
    method, classifier = NAMES
    for name, column in (("table.csv", "Method"), ("classifiers.csv", "Classifier")):
        frame = pd.read_csv(reports / name)
        frame.loc[0, column] = method if column == "Method" else classifier
        frame.to_csv(reports / name, index=False)
    runs = pd.read_csv(reports / "runs.csv")
    runs.loc[0, ["method", "classifier"]] = [method, classifier]
    runs.to_csv(reports / "runs.csv", index=False)
    shutil.copy(reports / "roc.png", reports / "grids" / f"{classifier}.png")  # a file name with '&'
    set_header_text(reports, "Weights", f"; {classifier}: {method}")
    text, page = render(reports)
    assert "<script>x</script>" not in text and [t for t, _ in page.tags].count("script") == 1
    assert "&lt;script&gt;x&lt;/script&gt;" in text and "a&b" not in text and "a&amp;b" in text
    assert '<figcaption>a&amp;b</figcaption>' in text and 'alt="a&amp;b"' in text
    assert '<a href="./grids/">' in text  # links are relative and URL-quoted
    header = text[text.index('id="provenance"'):text.index('id="metrics"')]
    assert "<li>a&amp;b: &lt;script&gt;x&lt;/script&gt;</li>" in header


def test_the_page_does_not_read_results_md(reports: Path):
    """Every section comes from the report model (CSVs, JSON, images): without results.md the page
    is the same but for the file list."""
    with_md, _ = render(reports)
    (reports / "results.md").unlink()
    without, page = render(reports)
    assert list(page.sections) == committed_sections(reports)
    assert without == with_md.replace('<li><a href="./results.md">results.md</a></li>', "")


def test_markdown_and_html_share_the_header_and_prose(reports: Path):
    """results.md's title, header bullets and section prose come from the same model as the page's."""
    header = report_model.load_header(json.loads((reports / "provenance.json").read_text()))
    markdown = (reports / "results.md").read_text(encoding="utf-8")
    assert markdown.startswith(f"# {header.title}\n\n") and report_model.header_markdown(header) in markdown
    text, _ = render(reports)
    provenance = text[text.index('id="provenance"'):text.index('id="metrics"')]
    assert [f"<dt>{report_model.inline(i.term)}</dt>" in provenance for i in header.items] == [True] * len(header.items)
    for prose in (report_model.metrics_intro(header.confidence, header.pseudolabel_row),
                  report_model.CLASSIFIERS_INTRO, report_model.PARAMETERS_INTRO, report_model.COMPARISONS_INTRO,
                  report_model.drs_intro(header.drs_runs)):
        assert prose in markdown and str(report_model.inline(prose)) in text


def test_a_folder_from_before_the_header_was_kept_still_renders(reports: Path):
    prov = json.loads((reports / "provenance.json").read_text())
    del prov[report_model.REPORT_KEY]
    (reports / "provenance.json").write_text(json.dumps(prov))
    text, page = render(reports)
    assert list(page.sections) == committed_sections(reports)
    assert "<title>augbench report: reports</title>" in text and "Package versions (provenance.json)" in text


def test_sections_are_left_out_without_their_inputs(reports: Path):
    for name in ("comparisons.csv", "figures/activation.png", "parameters.csv"):
        (reports / name).unlink()
    shutil.rmtree(reports / "grids")
    _, page = render(reports)
    assert {"significance", "drs", "parameters", "samples"}.isdisjoint(page.sections)
    assert "metrics" in page.sections


def test_an_empty_folder_still_renders(tmp_path: Path):
    text, page = render(tmp_path)
    assert "augbench report" in text and list(page.sections) == ["papers"]
    assert "no counterpart in augbench" in text and "results.csv absent" in text


def test_optional_sections_appear_with_their_files(reports: Path):
    png = reports / "roc.png"
    before = len(pngs(reports))
    new = [reports / "lrp" / "extra-a__resnet50.png", reports / "lrp" / "extra-b__resnet50.png",
           reports / "speedup.png", reports / "figures" / "extra.png", reports / "figures" / "gan_stylegan2-ada.png"]
    added = sum(not p.exists() for p in new)  # the committed report may already have speedup.png
    (reports / "lrp").mkdir(exist_ok=True)
    for name in ("extra-a__resnet50.png", "extra-b__resnet50.png"):
        shutil.copy(png, reports / "lrp" / name)
    (reports / "lrp.csv").write_text("method,classifier,relevance_in_lesion\nnone,resnet50,0.61\n")
    (reports / "quality.csv").write_text("method,fid,ssim\nnst-gatys,41.2,0.71\n")
    shutil.copy(png, reports / "figures" / "gan_stylegan2-ada.png")
    (reports / "pseudolabel.csv").write_text("fold,auc\n0,0.8\n1,0.9\nmean,0.85\nsd,0.07\n")
    (reports / "speedup.csv").write_text("np,seconds,speedup,efficiency\n1,100.0,1.0,1.0\n8,25.0,4.0,0.5\n")
    shutil.copy(png, reports / "speedup.png")
    shutil.copy(png, reports / "figures" / "extra.png")
    text, page = render(reports)
    assert list(page.sections) == ALWAYS[:-2] + OPTIONAL + ALWAYS[-2:]
    assert len(page.images) == before + added
    speedup = paper_rows(text, "Panigrahi, Saha, Iqrah, Prasad 2024: Table 3")
    assert "speedup.csv absent" not in speedup and ">4.00<" in speedup  # our 8-process speed-up beside 5.09


def paper_rows(page_text: str, table_heading: str) -> str:
    start = page_text.index(table_heading)
    return page_text[start:page_text.index("</table>", start)]


def test_papers_section_sets_their_values_beside_ours(reports: Path):
    text, _ = render(reports)
    table4 = paper_rows(text, "Panigrahi, Saha, Iqrah, Prasad 2024: Table 4")
    rotation = table4[table4.index("/ Rotation"):].split("</tr>")[0]
    ours = pd.read_csv(reports / "table.csv").set_index(["Method", "Classifier"]).loc[
        ("geometric-rotation", "resnet50"), "Acc"]  # e.g. "79.2 [62.5, 91.8]"
    value, interval = ours.split(" ", 1)
    assert ">83.06<" in rotation and f">{value}<span class=\"ci\">{interval}</span>" in rotation  # paper Acc, our Acc
    assert "geometric-rotation / resnet50" in rotation and "differs: dataset (BUSI + 167 others vs phantom)" in rotation
    assert "weights (imagenet vs none)" in rotation and "not stated in the paper: image size" in rotation
    byra = paper_rows(text, "Byra 2021: Table 2")
    drs = byra[byra.index(">DRS<"):].split("</tr>")[0]
    auc = pd.read_csv(reports / "results.csv").set_index(["method", "classifier"]).loc[("none", "drs-resnet101")]
    ci = f">{auc['auc']:.3f}<span class=\"ci\">[{auc['auc_low']:.3f}, {auc['auc_high']:.3f}]</span>"
    assert ">0.935 ± 0.018<" in drs and ci in drs and "image size (224 vs 32)" in drs
    assert "feature-extraction: not in this run" in byra
    mik = paper_rows(text, "Mikołajczyk, Grochowski 2018: Table I")
    assert "no counterpart in augbench" in mik and "0.805, 0.820, 0.845, 0.845, 0.805" in mik
    ours = text[:text.index('id="papers"')]
    assert "83.06" not in ours and "0.8875" not in ours  # paper values stay out of our own tables


def test_table2_gain_is_against_none(reports: Path):
    results = pd.read_csv(reports / "results.csv").set_index(["method", "classifier"])
    gain = 100 * (results.loc[("geometric-rotation", "resnet50"), "accuracy"] - results.loc[("none", "resnet50"),
                                                                                           "accuracy"])
    text, _ = render(reports)
    assert f">{gain:+.1f}<" in paper_rows(text, "Panigrahi, Saha, Iqrah, Prasad 2024: Table 2")


def test_paper_values_name_real_methods_and_classifiers():
    rows = html_report.load_paper_values()
    assert {r.paper for r in rows} == {"panigrahi2024", "byra2021", "fedoruk2022", "mikolajczyk2018"}
    methods = {e.name for e in md.entry_points(group="augbench.augmenters")}
    plugins = {e.name for e in md.entry_points(group="augbench.classifiers")}
    classifiers = set(yaml.safe_load((ROOT / "params.yaml").read_text())["train"]["classifiers"])
    for row in rows:
        top = {"percent": 100, "fraction": 1}.get(row.unit, float("inf"))
        assert all(0 <= v <= top for v in row.values.values()), row.row
        where = (row.ours or {}).get("where", {})
        assert where.get("method", "none") in methods, row.row
        assert where.get("classifier", "resnet50") in classifiers, row.row
        assert where.get("plugin", where.get("Family", "resnet50")) in plugins, row.row


@pytest.mark.parametrize("mutation", [
    lambda d: d["entries"][0].update(paper="nobody2020"),
    lambda d: d["entries"][0].update(values={"accuracy": "high"}),
    lambda d: d["entries"][0].pop("row"),
    lambda d: d["entries"][0].update(ours={"method": "none"}),
])
def test_malformed_paper_values_are_named(tmp_path: Path, mutation):
    data = yaml.safe_load(html_report.PAPER_VALUES.read_text())
    data["entries"] = [dict(data["entries"][0])]
    mutation(data)
    path = tmp_path / "paper_values.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(DataError, match=r"entries\[0\]"):
        html_report.load_paper_values(path)


def test_differs_names_settings():
    theirs = {"dataset": "BUSI", "image_size": 224, "split": [0.7, 0.15, 0.15], "srad": True, "epochs": None,
              "data": "described only"}
    ours = {"dataset": "busi", "image_size": 32, "split": [0.7, 0.15, 0.15], "srad": False, "epochs": 4}
    diff, unstated = html_report.differs(theirs, ours)
    assert diff == ["image size (224 vs 32)", "SRAD (on vs off)"] and unstated == ["epochs"]


@pytest.mark.slow
def test_page_renders_in_headless_chromium(reports: Path, tmp_path: Path):
    """Every image decodes, every table has rows, no console error, nothing fetched from outside
    the page, a header click sorts; screenshot saved beside the test's files."""
    if not find_chromium():
        pytest.skip("no Chromium binary: install it (Debian: apt-get install chromium) or set AUGBENCH_CHROMIUM")
    table = pd.read_csv(reports / "table.csv")
    table.loc[0, "Method"] = HOSTILE  # would log an error and add a broken image if it were not escaped
    table.to_csv(reports / "table.csv", index=False)
    page = html_report.write_html(reports)
    shot = tmp_path / "report.png"
    result = html_report.check(page, screenshot=shot, height=4000)
    assert html_report.problems(result) == []
    assert result["sections"] == committed_sections(reports)
    assert len(result["images"]) == len(pngs(reports)) and result["sorted"] is True
    assert all(t["rows"] > 0 for t in result["tables"]) and len(result["tables"]) >= 10
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


@pytest.mark.slow
def test_browser_check_catches_a_broken_page(tmp_path: Path):
    if not find_chromium():
        pytest.skip("no Chromium binary: install it (Debian: apt-get install chromium) or set AUGBENCH_CHROMIUM")
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><meta charset="utf-8"><title>t</title></head><body><main>'
                    '<img alt="broken" src="data:image/png;base64,AAAA"><img alt="remote" src="http://example.invalid/x.png">'
                    '<table><tbody></tbody></table><script>console.error("boom")</script></main></body></html>')
    found = html_report.problems(html_report.check(page))
    assert "image 'broken' did not load" in found and "image 'remote' is not embedded" in found
    assert "table '' has no rows" in found and any("console.error: boom" in f for f in found)
    assert any("example.invalid" in f for f in found if f.startswith("request outside"))


def test_a_malformed_header_names_provenance_json(reports: Path):
    prov = json.loads((reports / "provenance.json").read_text())
    prov[report_model.REPORT_KEY]["items"] = [{"label": "Dataset", "value": "phantom"}]  # 'text', not 'value'
    (reports / "provenance.json").write_text(json.dumps(prov))
    with pytest.raises(DataError, match=r"provenance\.json.*'report'"):
        render(reports)
