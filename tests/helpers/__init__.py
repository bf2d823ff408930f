"""What test modules share that is not a fixture (fixtures stay in ``tests/conftest.py``).

``runs``: ``python train.py`` as a user runs it, and a checkpoint's weights. ``data``: files in the
formats the datamodules read (IDX). ``sizes``: override tuples that make a task's run tiny.
"""
