"""The main screen's widgets, one per module: the two fleet tables, the status bar, the detail
pane and the filter box."""
