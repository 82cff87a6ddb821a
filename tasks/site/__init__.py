"""Reading and validating the site file: the reader, the settings table, the model, the
checks across keys, and the Layout of everything built for a site."""

from tasks import DEFAULT_SITE
from tasks.site.layout import Layout, Place
from tasks.site.load import ConfigError, load_site
from tasks.site.model import (
    BlockdevSpec,
    ConvergeSpec,
    DomU,
    GenerationsSpec,
    Host,
    ImageSpec,
    PkgSource,
    PkgSpec,
    RootSource,
    RootSpec,
    Site,
    SwapSpec,
    plain,
)
from tasks.site.reader import Problem
from tasks.site.reference import reference_markdown

__all__ = [
    "DEFAULT_SITE",
    "BlockdevSpec",
    "ConfigError",
    "ConvergeSpec",
    "DomU",
    "GenerationsSpec",
    "Host",
    "ImageSpec",
    "Layout",
    "PkgSource",
    "PkgSpec",
    "Place",
    "Problem",
    "RootSource",
    "RootSpec",
    "Site",
    "SwapSpec",
    "load_site",
    "plain",
    "reference_markdown",
]
