"""The HTML reports: figures (matplotlib) embedded in jinja2 templates, one self-contained file."""
