"""Runs one module of Mailman's own tests/ (upstream's unittest suite), in the test host, with
Mailman's Python (2.7 for gnu, so no f-strings here): `upstream_unittest.py TESTS_DIR MODULE`.
Prints the outcome as one JSON line: ran, and the ids of the tests that failed or errored.

Upstream's testall.py cannot run on Python 3.12+ (unittest.makeSuite is gone), and runs only some
modules. Here each module runs the tests its suite() picks, or, when it has no suite() that
takes no arguments, every test it defines (as `python test_X.py` would).
"""

import glob
import inspect
import json
import os
import shutil
import sys
import unittest


def make_suite(case_class):
    return unittest.defaultTestLoader.loadTestsFromTestCase(case_class)


def module_suite(module):
    suite = getattr(module, "suite", None)
    if suite is None or (inspect.getargspec if sys.version_info[0] < 3 else inspect.getfullargspec)(suite).args:
        return unittest.defaultTestLoader.loadTestsFromModule(module)
    if not hasattr(unittest, "makeSuite"):  # removed in Python 3.13
        unittest.makeSuite = make_suite
    return suite()


def remove_leftovers():
    """What a test whose setUp failed after TestBase's leaves behind (its tearDown never ran):
    the _xtest list and its lock, which would fail every later module's setUp."""
    from Mailman import mm_cfg
    for pattern in ("lists/_xtest", "archives/private/_xtest*", "archives/public/_xtest*"):
        for path in glob.glob(os.path.join(mm_cfg.VAR_PREFIX, pattern)):
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.unlink(path)
    for path in glob.glob(os.path.join(mm_cfg.LOCK_DIR, "_xtest.lock*")):
        os.unlink(path)


def main():
    tests_dir, name = sys.argv[1:]
    # As `cd PREFIX; python tests/testall.py` does: the tests import paths.py (the prefix's
    # Mailman) and TestBase from tests/, and 2.1's read their sample messages from tests/.
    os.chdir(os.path.dirname(os.path.abspath(tests_dir)))
    sys.path.insert(0, tests_dir)
    import paths  # noqa: F401
    remove_leftovers()
    try:
        suite = module_suite(__import__(name))
    except Exception as error:  # a module that cannot even load: one error, no test ran
        print(json.dumps({"ran": 0, "failures": [], "errors": [name + ": " + repr(error)]}))
        return
    result = unittest.TextTestRunner(stream=sys.stderr, verbosity=2).run(suite)
    print(json.dumps({"ran": result.testsRun,
                      "failures": [test.id() for test, _ in result.failures],
                      "errors": [test.id() for test, _ in result.errors]}))


main()
