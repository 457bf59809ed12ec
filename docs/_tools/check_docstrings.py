"""Report public skae names whose docstring lacks a runnable numpydoc Examples section.

Usage, from the repository root::

    python docs/_tools/check_docstrings.py          # report only
    python docs/_tools/check_docstrings.py --run    # also run each Examples section

A public name is one listed in ``__all__`` of ``skae`` or of one of its public
modules, plus the public methods and properties a public class defines itself
(methods inherited from scikit-learn are documented there). Exit status 1 when
any name lacks an Examples section with ``>>>`` lines, or (with ``--run``) when
one of them fails.
"""

import argparse
import doctest
import importlib
import inspect
import sys
import warnings

from numpydoc.docscrape import FunctionDoc, NumpyDocString

MODULES = [
    "skae",
    "skae.architectures",
    "skae.datasets",
    "skae.metrics",
    "skae.persistence",
    "skae.plotting",
]


def public_objects():
    """Yield ``(qualified name, object)`` for every public skae name, once each."""
    seen = set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or callable(obj)) or id(obj) in seen:
                continue  # Constants (__version__, FORMAT_VERSION) have no docstring.
            seen.add(id(obj))
            qualname = f"{module_name}.{name}"
            yield qualname, obj
            if inspect.isclass(obj):
                for attr, member in list(vars(obj).items()):
                    if attr.startswith("_"):
                        continue
                    if callable(member) or isinstance(member, property):
                        yield f"{qualname}.{attr}", member


def examples_of(obj):
    doc = inspect.getdoc(obj) or ""
    try:
        parsed = FunctionDoc(obj) if callable(obj) else NumpyDocString(doc)
    except Exception:  # A malformed docstring: read what can be read.
        parsed = NumpyDocString(doc)
    return "\n".join(parsed["Examples"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="run the examples")
    args = parser.parse_args(argv)
    missing, failed, ok = [], [], []
    runner_parser = doctest.DocTestParser()
    for qualname, obj in public_objects():
        examples = examples_of(obj)
        if ">>>" not in examples:
            missing.append(qualname)
            continue
        if args.run:
            test = runner_parser.get_doctest(
                examples,
                {},
                qualname,
                inspect.getsourcefile(
                    inspect.unwrap(obj.fget if isinstance(obj, property) else obj)
                ),
                0,
            )
            runner = doctest.DocTestRunner(
                optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runner.run(test, out=lambda s: None)
            if runner.failures:
                failed.append(qualname)
                continue
        ok.append(qualname)
    for qualname in ok:
        print(f"ok       {qualname}")
    for qualname in missing:
        print(f"MISSING  {qualname}: no Examples section with >>> lines")
    for qualname in failed:
        print(f"FAILED   {qualname}: its Examples do not pass as a doctest")
    print(f"{len(ok)} ok, {len(missing)} missing, {len(failed)} failed")
    return 1 if missing or failed else 0


if __name__ == "__main__":
    sys.exit(main())
