"""Interactive explorers for the notebooks (ipywidgets sliders in a live Jupyter kernel).

Under papermill / nbconvert there is no live kernel behind the page, so each explorer returns None and the
notebook's static figures carry the content. Which mode applies is decided by `utils.is_interactive()`.
"""

from __future__ import annotations

from ..utils import is_interactive


def discretization_explorer(kind: str = "step"):
    """Sliders for the pole a and the step dt: redraws the four discretisations against the exact response."""
    if not is_interactive():
        print("(interactive sliders appear when this notebook runs in a live Jupyter kernel)")
        return None
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from . import plotting, theory

    def draw(a: float = -1.0, dt: float = 0.5):
        fig = plotting.discretization_responses(theory.discretization_responses(a=a, dts=(dt,), T=8.0, kind=kind))
        plt.show(fig)

    return W.interact(draw, a=W.FloatSlider(value=-1.0, min=-4.0, max=-0.1, step=0.1, description="pole a"),
                      dt=W.FloatLogSlider(value=0.5, base=10, min=-2, max=0.7, step=0.05, description="dt"))


def matrix_explorer():
    """Slider for the sequence length L: redraws the SSD (semiseparable) and Hydra (quasiseparable) matrices."""
    if not is_interactive():
        print("(interactive sliders appear when this notebook runs in a live Jupyter kernel)")
        return None
    import ipywidgets as W
    import matplotlib.pyplot as plt

    from . import plotting, theory

    def draw(L: int = 16, seed: int = 0):
        plt.show(plotting.heatmap(theory.ssd_matrix_demo(L, seed=seed)["M"], "SSD: semiseparable M"))
        plt.show(plotting.heatmap(theory.hydra_matrix_demo(L, seed=seed)["M"], "Hydra: quasiseparable M"))

    return W.interact(draw, L=W.IntSlider(value=16, min=4, max=48), seed=W.IntSlider(value=0, min=0, max=9))
