"""`trader dashboard`: a local web app over the same library functions the CLI calls (see app.py)."""
