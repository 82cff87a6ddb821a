"""Recipes: the seed's procedures as short sequences of named steps on a Tree."""
