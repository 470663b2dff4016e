"""Measuring compiled models against eager PyTorch and peer runtimes: ``demo``, ``bench`` and what they share."""
