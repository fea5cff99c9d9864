"""The Textual controller (`syncopate tui`): live node and project tables, a key for every action.

The only package that imports textual. `model` and `rows` are pure (the fleet as the /events
feed describes it, and the cells shown for it); `app` is the screen, its feed and its actions;
`screens` holds the dialogs.
"""
