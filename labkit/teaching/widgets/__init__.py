"""Interactive dashboards for the notebooks (ipywidgets + plotly FigureWidget); one module per topic.

Every builder returns the widget container *and* exposes its update function, so
notebooks and tests can drive the callback without a browser.
"""

#: ipywidgets style that gives a control's description the room it needs (the default cuts "temperature" short)
FULL_LABEL = {"description_width": "initial"}
