"""setup.py takes the version from segnext_jt/__init__.py (the one place it is written) without
importing the package."""
from __future__ import annotations

import runpy

import setuptools

from helpers import ROOT

import segnext_jt


def test_setup_reads_the_package_version(monkeypatch):
    seen = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: seen.update(kwargs))
    runpy.run_path(str(ROOT / "setup.py"))
    assert seen["version"] == segnext_jt.__version__
    assert seen["version"].count(".") == 2
