"""The manager's HTTP routes, one module per kind of caller; app.py registers them."""
