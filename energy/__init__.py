"""snnas.energy: spike-aware operation counting and energy pricing for any torch model.

This package never imports ``nas``: it must count a user's own model.
"""
