"""Importers that bring annotations from other tools into a project."""
