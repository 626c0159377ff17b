"""The auditors' charts can be read: a value axis with round ticks and a title, each
category labelled, a legend, and colours colour-blind readers tell apart (no red)."""

import re

from audit.charts import COLOURS, Chart, bar_svg, nice_ticks


def test_ticks_are_round_and_reach_the_peak():
    assert nice_ticks(100) == [0, 25, 50, 75, 100]
    assert nice_ticks(7) == [0, 2, 4, 6, 8]
    assert nice_ticks(3) == [0, 1, 2, 3]
    assert nice_ticks(0) == [0, 1]
    assert nice_ticks(1234)[-1] >= 1234


def test_a_chart_has_labelled_axes_and_a_legend():
    chart = Chart("Studies exported", ["dataset 1", "dataset 2"], value_axis="studies",
                  category_axis="dataset")
    chart.series = {"exported": [12, 3], "excluded": [4, 0]}
    svg = bar_svg(chart)
    ticks = re.findall(r'text-anchor="end" fill="#1b1f24">([^<]+)</text>', svg)
    assert ticks == ["0", "5", "10", "15"]  # not just the maximum
    assert ">studies</text>" in svg and ">dataset</text>" in svg
    assert ">dataset 1</text>" in svg and ">dataset 2</text>" in svg
    assert ">exported</text>" in svg and ">excluded</text>" in svg


def test_percentages_run_to_100_percent():
    chart = Chart("Yes", ["2026-01"], unit="%", value_axis="choices that said yes")
    chart.series = {"research": [40.0]}
    svg = bar_svg(chart)
    assert ">100%</text>" in svg and ">0%</text>" in svg


def test_colours_are_colour_blind_safe_and_not_red():
    assert COLOURS[:3] == ("#0072B2", "#E69F00", "#009E73")  # Okabe-Ito
    for colour in COLOURS:
        r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
        assert not (r > 150 and g < 80 and b < 80), colour
