"""Sweep files: ``base.py`` holds the one config schema; every other file is one axis of the study."""
