"""A study: the model of one (``study.py``: variants, conditions, seeds), reading its file
(``file.py``), its conditions (``conditions.py``), the switch table ``study show`` prints
(``table.py``), planning it into runs (``plan.py``: ``RunSpec``) and sizing its seeds
(``sizing.py``). Nothing here imports torch."""
