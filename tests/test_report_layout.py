"""Plot checks that can fail (mobileseg.report.layout), run on hand-made broken plots and on every plot of the
report drawn from the committed reference data."""

import pandas as pd
import pytest

from mobileseg.report import build_report, layout, plots
from mobileseg.resources import project_path


def _axes(figsize=(4, 3)):
    plt = plots._pyplot()
    fig, ax = plt.subplots(figsize=figsize)
    return plt, fig, ax


def test_overlapping_labels_and_a_label_outside_the_axes_are_found():
    plt, fig, ax = _axes()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    ax.scatter([2, 2.3], [5, 5])
    ax.text(2, 5, "deeplabv3plus-mbv2", fontsize=8)
    ax.text(2.3, 5, "segformer-b0", fontsize=8)  # on top of the first label and of its point
    ax.text(9.5, 9.8, "falls off the right edge", fontsize=8)
    found = layout.label_problems(fig, ax)
    plt.close(fig)
    assert any("overlap" in p for p in found)
    assert any("falls off the right edge" in p and "not inside" in p for p in found)
    assert any("lies on the bubble" in p for p in found)


def test_an_error_bar_beyond_the_axis_is_found():
    plt, fig, ax = _axes()
    ax.set_xscale("log")
    ax.errorbar([15.0], [30.0], xerr=[[11.07], [1.0]], fmt="none")  # 95% low at 3.93 ms
    ax.set_xlim(15.0 / 1.6, 40)  # the old rule: 1.6x below the fastest median, blind to the interval
    found = layout.errorbar_problems(ax)
    plt.close(fig)
    assert found and "3.93" in found[0]


def test_a_log_axis_with_two_numbers_is_found_and_the_plots_tick_it_readably():
    plt, fig, ax = _axes()
    ax.set_xscale("log")
    ax.set_xlim(9.4, 30)
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # the old ticks: 10 and 20 only
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if f"{v:.0e}"[0] in "25" else ""))
    assert layout.tick_problems(fig, ax)
    plots._plain_log_ticks(ax.xaxis)
    assert layout.tick_problems(fig, ax) == []
    plt.close(fig)


def test_figure1_legend_lists_only_what_is_drawn(tmp_path):
    one = pd.DataFrame(
        {
            "label": ["topformer-t 512x512"],
            "latency_ms": [15.0],
            "miou": [32.8],
            "params_m": [1.4],
            "is_topformer": [True],
        }
    )
    seen = []
    plots.figure1(
        one,
        tmp_path / "f",
        "t",
        inspect=lambda fig, ax: seen.append([t.get_text() for t in ax.get_legend().get_texts()]),
    )
    assert seen == [["TopFormer", "real-time zone boundary"]]


@pytest.mark.slow
def test_every_plot_of_the_committed_reference_report_passes_the_checks(tmp_path, monkeypatch):
    found = {}
    real = plots._save

    def save(fig, out_base):
        found[out_base.name] = layout.problems(fig, fig.axes[0])
        return real(fig, out_base)

    monkeypatch.setattr(plots, "_save", save)
    ref = project_path("results", "reference")
    build_report(
        results=[ref / "host-amd-epyc-t1.jsonl", ref / "host-paper-onnxruntime-target-ci1-t1.jsonl"],
        out=tmp_path / "report",
    )
    assert {
        "figure1-published",
        "pareto-host-amd-epyc-onnxruntime",
        "paper-vs-measured",
        "runtimes-host-amd-epyc",
        "memory-host-amd-epyc-335449",
    } <= set(found)
    assert {k: v for k, v in found.items() if v} == {}
