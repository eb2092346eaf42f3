"""The lab's foundations: the black box, data, models, losses, training, configs, results and paths."""

#: the lab's version (pyproject.toml); ``labkit.__version__`` re-exports it
LABKIT_VERSION = "0.1.0"
