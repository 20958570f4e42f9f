"""tests/upstream_unittest.py, which runs one module of Mailman's own tests in a test host, on a
stand-in prefix: what each module runs, what it reports, where it runs, and what it cleans."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

RUNNER = Path(__file__).parent / "helpers/upstream_unittest.py"

MODULES = {
    # suite() picks one class, through makeSuite (gone in Python 3.13), as upstream's modules do.
    "test_picked": """
import os, unittest
class Picked(unittest.TestCase):
    def test_ok(self):
        self.assertTrue(os.path.exists('tests/paths.py'))  # run from the prefix, as testall.py is
    def test_fails(self):
        self.fail()
class Left(unittest.TestCase):
    def test_never(self):
        pass
def suite():
    suite = unittest.TestSuite()
    suite.addTest(unittest.makeSuite(Picked))
    return suite
""",
    # suite(x) takes an argument (test_message's): every test the module defines runs.
    "test_every": """
import unittest
from Mailman import mm_cfg
class One(unittest.TestCase):
    def test_error(self):
        raise RuntimeError
class Two(unittest.TestCase):
    def test_ok(self):
        pass
def suite(x):
    raise AssertionError
""",
    "test_broken": "import asyncore_that_is_gone\n",
}


@pytest.fixture
def prefix(tmp_path) -> Path:
    prefix = tmp_path / "prefix"
    (prefix / "Mailman").mkdir(parents=True)
    (prefix / "Mailman/__init__.py").write_text("")
    (prefix / "Mailman/mm_cfg.py").write_text(f"VAR_PREFIX = {str(prefix)!r}\nLOCK_DIR = {str(prefix / 'locks')!r}\n")
    (prefix / "tests").mkdir()
    (prefix / "tests/paths.py").write_text(f"import sys\nsys.path.insert(0, {str(prefix)!r})\n")
    for name, text in MODULES.items():
        (prefix / f"tests/{name}.py").write_text(text)
    return prefix


def run(prefix: Path, module: str) -> dict:
    done = subprocess.run([sys.executable, str(RUNNER), str(prefix / "tests"), module], cwd="/", capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def test_a_module_runs_what_its_suite_picks(prefix):
    assert run(prefix, "test_picked") == {"ran": 2, "failures": ["test_picked.Picked.test_fails"], "errors": []}


def test_a_module_whose_suite_takes_arguments_runs_every_test(prefix):
    assert run(prefix, "test_every") == {"ran": 2, "failures": [], "errors": ["test_every.One.test_error"]}


def test_a_module_that_cannot_load_is_one_error(prefix):
    outcome = run(prefix, "test_broken")
    assert outcome["ran"] == 0 and outcome["failures"] == []
    assert [error.split(":")[0] for error in outcome["errors"]] == ["test_broken"]


def test_a_module_starts_without_the_list_an_earlier_one_left(prefix):
    for leftover in ("lists/_xtest", "archives/private/_xtest.mbox", "locks"):
        (prefix / leftover).mkdir(parents=True)
    (prefix / "locks/_xtest.lock").write_text("")
    (prefix / "lists/other").mkdir()
    run(prefix, "test_picked")
    assert sorted(path.name for path in (prefix / "lists").iterdir()) == ["other"]
    assert list((prefix / "archives/private").iterdir()) == []
    assert list((prefix / "locks").iterdir()) == []
