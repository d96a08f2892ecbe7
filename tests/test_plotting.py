"""The PNG of a schedule: boundary labels that never run into each other."""

from __future__ import annotations

import itertools

import pytest

from optforge.plotting import trace_figure, trace_schedule

pytest.importorskip("matplotlib")


@pytest.mark.parametrize("every", [1, 3, 10])
def test_boundary_labels_above_the_plot_never_overlap(every: int) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    document = {
        "optimizer": {"name": "SGD", "lr": 0.1},
        "schedule": {
            "step_decay": {"peak_value": 0.1, "decay_rate": 0.8, "transition_steps": every, "warmup_steps": 100}
        },
    }
    trace = trace_schedule(document, 200, None, title="steps")
    fig = trace_figure(trace)
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    ax = fig.axes[0]
    dashed = [line.get_xdata()[0] for line in ax.get_lines() if line.get_linestyle() == "--"]
    assert dashed == trace.boundaries  # every boundary keeps its line
    boxes = sorted((text.get_window_extent(renderer) for text in ax.texts), key=lambda box: box.x0)
    assert boxes, "at least the warmup's end is labelled"
    assert next(text.get_text() for text in ax.texts) == "warmup end"
    for left, right in itertools.pairwise(boxes):
        assert left.x1 <= right.x0, "two boundary labels overlap"
