"""Staging trees, image writers and readers, publishing.

Nothing is imported here: a module that needs one file of this package (the staging Tree,
the private modes) does not load every image writer with it.
"""
