"""The report's verdict section (bench.report_model, its templates, the forest plot), from
fabricated ``verdict.csv``/``verdict.json`` files in the evaluate stage's schema."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
from pathlib import Path

import jinja2
import pandas as pd
import pytest
from PIL import Image

from bench import html_report, report_model
from bench.errors import DataError
from bench.stages.report import verdict_section
from tests.test_report_html import Page

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = "<script>x</script>"


def arm(method: str, role: str = "method", expected: str = "", verdict: str = "no evidence",
        delta: float = 0.0, low: float = -0.01, high: float = 0.01, p_holm: float = 0.5,
        as_expected: object = "", classifier: str = "resnet50", n_seeds: int = 5) -> dict:
    return {"classifier": classifier, "method": method, "role": role, "expected": expected,
            "n_seeds": n_seeds, "auc_base": 0.80, "auc_method": 0.80 + delta, "delta": delta, "low": low,
            "high": high, "p": p_holm / 2, "p_holm": p_holm, "sd_diff": 0.012, "mde": 0.0201,
            "power_at_mde": 0.8, "delong_significant": 2, "verdict": verdict, "as_expected": as_expected}


def arms(positive: str = "helps") -> list[dict]:
    """Two methods, then the controls in another order than the table's; the positive control
    came out ``positive``."""
    return [
        arm("none", "A/A", "no evidence", as_expected=True, delta=0.001),
        arm("geometric-rotation", verdict="helps", delta=0.0312, low=0.0121, high=0.0504, p_holm=0.0004),
        arm("control-shuffled-labels", "negative control", "hurts", "hurts", -0.1, -0.13, -0.07, 0.0003, True),
        arm(HOSTILE, verdict="no evidence", delta=-0.0043, low=-0.02, high=0.012, p_holm=0.8),
        arm("control-more-data", "positive control", "helps", positive, 0.05 if positive == "helps" else 0.01,
            0.03 if positive == "helps" else -0.01, 0.07 if positive == "helps" else 0.03, 0.002, ""),
    ]


INFO = {"alpha": 0.05, "confidence": 0.95, "n_resamples": 2000, "seeds": [0, 1, 2, 3, 4],
        "aa_seeds": [100, 101, 102, 103, 104], "n_test": 120, "baseline": "none",
        "test": "Paired t-test over seeds, Holm-adjusted over the methods.",
        "interval": "Two-level percentile bootstrap over seeds and test cases.", "budget": "steps",
        "weights": {"resnet50": "imagenet (keras.applications)"}, "classifiers": ["resnet50"]}


def write_verdict(folder: Path, rows: list[dict] | None = None, **info) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(arms() if rows is None else rows).to_csv(folder / "verdict.csv", index=False)
    (folder / "verdict.json").write_text(json.dumps({**INFO, **info}), encoding="utf-8")
    return folder


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return write_verdict(tmp_path / "reports")


def table_rows(markdown: str) -> list[list[str]]:
    lines = [line for line in markdown.splitlines() if line.startswith("| ")]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines[1:]]  # no header


# --- the model -------------------------------------------------------------------------------------

def test_model_orders_methods_then_controls_and_states_the_setup(folder: Path):
    v = report_model.load_verdict(folder)
    assert [(a.method, a.role) for a in v.arms] == [
        ("geometric-rotation", "method"), (HOSTILE, "method"), ("control-more-data", "positive control"),
        ("control-shuffled-labels", "negative control"), ("none", "A/A")]
    assert (v.n_seeds, v.budget, v.weights, v.power) == (5, "steps", "resnet50: imagenet (keras.applications)", "80%")
    assert v.counts == {"helps": 1, "hurts": 0, "no evidence": 1}
    assert v.arms[2].as_expected is True  # empty in the file: verdict == expected
    assert v.arms[0].as_expected is None and not v.failed_controls


def test_numbers_are_signed_with_three_decimals_and_small_p_is_bounded():
    assert report_model.signed(0.0312) == "+0.031" and report_model.signed(-0.0043) == "-0.004"
    assert report_model.interval(0.0121, 0.0504) == "[+0.012, +0.050]"
    assert [report_model.p_value(p) for p in (0.0004, 0.0123, 1.0, float("nan"))] == [
        "< 0.001", "0.012", "1.000", "n/a"]
    assert report_model.plain(float("inf")) == "∞"


def test_weights_may_be_one_string(tmp_path: Path):
    v = report_model.load_verdict(write_verdict(tmp_path, weights="none (random init)"))
    assert v.weights == "none (random init)"


def test_no_verdict_without_verdict_csv(tmp_path: Path):
    assert report_model.load_verdict(tmp_path) is None


@pytest.mark.parametrize(("change", "message"), [
    (lambda f: pd.read_csv(f / "verdict.csv").drop(columns="mde").to_csv(f / "verdict.csv", index=False),
     "missing column(s) mde"),
    (lambda f: pd.read_csv(f / "verdict.csv").replace({"A/A": "AA"}).to_csv(f / "verdict.csv", index=False),
     "role 'AA' is not one of"),
    (lambda f: (f / "verdict.json").write_text(json.dumps({**INFO, "budget": "step"})), "did you mean 'steps'"),
    (lambda f: (f / "verdict.json").write_text(json.dumps({k: v for k, v in INFO.items() if k != "seeds"})),
     "missing seeds"),
    (lambda f: (f / "verdict.json").unlink(), "missing beside verdict.csv"),
])
def test_malformed_files_name_the_file_and_the_field(folder: Path, change, message: str):
    change(folder)
    with pytest.raises(DataError, match=re.escape(message)) as err:
        report_model.load_verdict(folder)
    assert "verdict." in str(err.value)


def test_templates_fail_loudly_on_a_missing_field():
    with pytest.raises(jinja2.UndefinedError):
        report_model.render("verdict.md.j2")


def test_templates_are_package_data():
    section = (ROOT / "pyproject.toml").read_text().split("[tool.setuptools.package-data]")[1]
    data = re.findall(r'"([^"]+)"', re.search(r"^bench = \[(.*?)\]", section, re.M).group(1))
    names = [p.relative_to(ROOT / "bench").as_posix() for p in report_model.TEMPLATES.iterdir()]
    assert {"templates/report/verdict.md.j2", "templates/report/verdict.html.j2"} <= set(names)
    assert all(any(fnmatch.fnmatch(n, pattern) for pattern in data) for n in names)


# --- Markdown --------------------------------------------------------------------------------------

def test_markdown_table_in_order_with_the_setup_above_it(folder: Path):
    text = report_model.verdict_markdown(report_model.load_verdict(folder))
    assert text.startswith(f"## {report_model.VERDICT_TITLE}\n")
    setup = text.index("**R = 5**")
    assert setup < text.index("| Classifier |")
    assert "budget: **steps**" in text and "weights: **resnet50: imagenet (keras.applications)**" in text
    rows = table_rows(text)
    assert [r[1] for r in rows] == ["geometric-rotation", "&lt;script&gt;x&lt;/script&gt;", "control-more-data",
                                    "control-shuffled-labels", "none"]
    assert rows[0][2:8] == ["method", "+0.031 [+0.012, +0.050]", "< 0.001", "**helps**", "0.020", "2 / 5"]
    assert [r[8] for r in rows] == ["", "", "as expected (helps)", "as expected (hurts)", "as expected (no evidence)"]
    assert "interval excludes 0 AND the paired t-test over seeds, Holm-adjusted within its family" in text
    assert "All 3 controls came out as expected" in text and "WARNING" not in text


def test_markdown_cells_cannot_break_the_table(tmp_path: Path):
    v = report_model.load_verdict(write_verdict(tmp_path, [arm("a|b*c_d"), arm("e", classifier="x|y")],
                                                classifiers=["resnet50", "x|y"]))
    rows = table_rows(report_model.verdict_markdown(v))
    assert [r[:2] for r in rows] == [["resnet50", r"a\|b\*c\_d"], [r"x\|y", "e"]]


def test_a_failed_control_produces_the_warning(tmp_path: Path):
    v = report_model.load_verdict(write_verdict(tmp_path, arms(positive="no evidence")))
    assert [a.method for a in v.failed_controls] == ["control-more-data"]
    text = report_model.verdict_markdown(v)
    warning = "**⚠ WARNING: 1 of 3 controls did NOT come out as expected: this run cannot tell effects apart.**"
    assert warning in text
    assert text.index(warning) < text.index("| Classifier |")  # above the table, not under it
    assert "came out 'no evidence', expected 'helps': the run missed an effect that is there" in text
    assert "All 3 controls" not in text
    assert "NOT as expected (expected helps)" in table_rows(text)[2][8]


def test_an_aa_control_that_finds_a_difference_is_called_a_false_alarm(tmp_path: Path):
    rows = arms()
    rows[0].update(verdict="helps", as_expected=False)
    text = report_model.verdict_markdown(report_model.load_verdict(write_verdict(tmp_path, rows)))
    assert "WARNING: 1 of 3" in text and "may be a false alarm" in text


def test_no_controls_is_said(tmp_path: Path):
    v = report_model.load_verdict(write_verdict(tmp_path, arms()[1:2]))
    assert "No controls were run" in report_model.verdict_markdown(v)


# --- the report stage and the forest plot ----------------------------------------------------------

def test_report_stage_draws_the_forest_plot_and_links_it(folder: Path):
    text = verdict_section(folder)
    png = folder / report_model.FOREST_PLOT
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(png) as image:
        image.verify()
    assert f"]({report_model.FOREST_PLOT})" in text


def test_forest_plot_has_one_panel_per_classifier_in_table_order(tmp_path: Path):
    rows = [arm("m", classifier="b"), arm("m", classifier="a"), arm("none", "A/A", "no evidence", classifier="a")]
    v = report_model.load_verdict(write_verdict(tmp_path, rows, classifiers=["a", "b"]))
    panels = report_model.forest_panels(v)
    assert list(panels) == ["classifier: a", "classifier: b"]
    assert [r["label"] for r in panels["classifier: a"]] == ["m", "none (A/A)"]
    report_model.draw_forest(v, tmp_path)
    assert (tmp_path / report_model.FOREST_PLOT).stat().st_size > 1000


def test_report_stage_leaves_the_section_out_without_verdict_csv(tmp_path: Path):
    stale = tmp_path / report_model.FOREST_PLOT
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    assert verdict_section(tmp_path) == ""
    assert not stale.exists()


# --- HTML ------------------------------------------------------------------------------------------

def test_html_escapes_names_and_shows_the_verdict_first(folder: Path):
    verdict_section(folder)
    text = html_report.render(folder, papers=None)
    page = Page(text)
    assert list(page.sections)[0] == "verdict"
    assert HOSTILE not in text and "&lt;script&gt;x&lt;/script&gt;" in text
    assert [t for t, _ in page.tags].count("script") == 1  # the page's own sorting script only
    verdict_table = next(t for t in page.tables if "verdict" in t["class"])
    assert verdict_table["rows"] == 5
    assert any(i["alt"].startswith("forest plot") for i in page.images)
    section = text[text.index('<section id="verdict">'):text.index("</section>")]
    assert "R = 5" in section and "steps" in section and "imagenet (keras.applications)" in section


def test_html_warns_about_a_failed_control(tmp_path: Path):
    text = html_report.render(write_verdict(tmp_path, arms(positive="no evidence")), papers=None)
    assert '<div class="warning" role="alert">' in text and "did NOT come out as expected" in text


def test_a_report_with_a_verdict_keeps_its_sections_and_header(tmp_path: Path):
    """The verdict goes first in both formats; the sections after it, and the header (from
    provenance.json), are as before."""
    reports = tmp_path / "reports"
    shutil.copytree(ROOT / "tests" / "data" / "report-every-method", reports, ignore=shutil.ignore_patterns("index.html", "verdict.*"))
    (reports / report_model.FOREST_PLOT).unlink(missing_ok=True)
    before = Page(html_report.render(reports, papers=None))
    write_verdict(reports)
    md = (reports / "results.md").read_text(encoding="utf-8")
    title, rest = md.split("\n\n", 1)
    (reports / "results.md").write_text(f"{title}\n\n{verdict_section(reports)}\n\n{rest}", encoding="utf-8")
    after = Page(html_report.render(reports, papers=None))
    assert list(after.sections) == ["verdict", *before.sections]
    assert after.sections["provenance"] == before.sections["provenance"]


def test_html_has_no_verdict_section_without_verdict_csv(tmp_path: Path):
    (tmp_path / "table.csv").write_text("Method,Classifier,AUC\nnone,resnet50,0.8\n")
    page = Page(html_report.render(tmp_path, papers=None))
    assert "verdict" not in page.sections and "Verdict" not in html_report.render(tmp_path, papers=None)
