"""Watching runs as they train: progress bars (``progress.py``), TensorBoard
(``tensorboard.py``) and MLflow (``mlflow_log.py``) logging, and the pictures (``pictures.py``)
and scalar tags (``tags.py``) the two loggers share."""
