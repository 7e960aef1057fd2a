# Single source of the package version: setup.py and pyproject.toml read it.
__version__ = "0.1.0"
