"""Runs one module of Mailman's own tests/ (upstream's unittest suite), in the test host, with
Mailman's Python (2.7 for gnu, so no f-strings here): `upstream_unittest.py TESTS_DIR MODULE`.
Prints the outcome as one JSON line: ran, and the ids of the tests that failed or errored.

Upstream's testall.py cannot run on Python 3.12+ (unittest.makeSuite is gone), and runs only some
modules. Here each module runs the tests its suite() picks, or, when it has no suite() that
takes no arguments, every test it defines (as `python test_X.py` would).
"""

import inspect
import json
import os
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


def main():
    tests_dir, name = sys.argv[1:]
    # As `cd TESTS_DIR; python test_X.py` does: the tests import paths.py (the prefix's
    # Mailman) and TestBase from there, and read their sample messages relative to it.
    os.chdir(tests_dir)
    sys.path.insert(0, tests_dir)
    import paths  # noqa: F401
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
