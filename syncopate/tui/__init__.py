"""The Textual controller (`syncopate tui`): live node and project tables, a key for every action.

The only package that imports textual. `model` and `rows` are pure (the fleet as the /events
feed describes it, and the cells shown for it); `app` is the shell: the keys, the feed and the
actions; `widgets` holds the main screen's parts, one per module, and `screens` the dialogs.
"""
