"""Small Sphinx hooks of the skae documentation (loaded by ``docs/conf.py``).

- Pages can hold placeholders that are filled at build time: the benchmark page
  states the command and date of the report it includes. When
  ``docs/threading.md`` exists, it becomes a page of the user guide, after the
  parallelism page, which links to it.
- Without intersphinx (the offline default), ``:ref:`` roles in the docstrings
  that ``AutoencoderTransformer`` inherits from scikit-learn point at labels of
  scikit-learn's own documentation, which would be reported as undefined. They
  are shown as plain text instead; with ``SKAE_DOCS_INTERSPHINX=1`` they link.
- In docstring lines about shapes, names such as ``n_features_in_`` and
  ``*input_shape`` inside parentheses are quoted as literals: reStructuredText
  reads a trailing "_" as a link to a missing target and a leading "*" as the
  start of emphasis (scikit-learn writes ``(`n_features_in_`,)`` for that
  reason).
- ``reset_argv`` gives the gallery examples their command line when
  ``SKAE_DOCS_RUN_GALLERY=1`` executes them.
"""

import os
import re
from pathlib import Path

BENCHMARK_PAGE = "benchmarks"
PARALLELISM_PAGE = "user_guide/parallelism"
USER_GUIDE_INDEX = "user_guide/index"


def reset_argv(gallery_conf, script_vars):
    """Command-line arguments of an executed gallery example.

    Figures the examples save themselves go to the build folder rather than
    into ``examples/``; ``SKAE_DOCS_GALLERY_QUICK=1`` adds ``--quick``.
    """
    src_dir = Path(gallery_conf["src_dir"])
    argv = ["--output-dir", str(src_dir / "_build" / "examples-output")]
    if os.environ.get("SKAE_DOCS_GALLERY_QUICK", "") == "1":
        argv.append("--quick")
    return argv


def _benchmark_text(facts):
    if facts is None:
        return (
            ":::{warning}\n"
            "No benchmark report was found in `docs/benchmark-report/`. Make it "
            "with `python -m benchmarks --out docs/benchmark-report`.\n"
            ":::\n"
        )
    text = (
        f"The report below was made on {facts['date']} by\n\n"
        f"```bash\n{facts['command']}\n```\n\n"
        "which writes `report.md`, `results.json` and the figures into "
        "`docs/benchmark-report/`.\n"
    )
    if facts["quick"]:
        text += (
            "\n:::{warning}\n"
            "This is a **quick** run (`--quick`): a smoke test on a subsample, "
            "with one seed and a few training epochs. Its numbers show that the "
            "benchmark works, not how well the defaults do; the reference report "
            "is made with `python -m benchmarks --out docs/benchmark-report`.\n"
            ":::\n"
        )
    return text


THREADING = "threading.md"  # Written on its own; a page of the user guide.


def _fill_placeholders(app, docname, source):
    threading = (Path(app.srcdir) / THREADING).is_file()
    if docname == BENCHMARK_PAGE:
        source[0] = source[0].replace(
            "<!-- skae-benchmark-command -->",
            _benchmark_text(app.config.skae_benchmark),
        )
    elif docname == PARALLELISM_PAGE:
        more = "More on threads in skae: {doc}`../threading`.\n" if threading else ""
        source[0] = source[0].replace("<!-- skae-threading-md -->", more)
    elif docname == USER_GUIDE_INDEX and threading:
        # After the parallelism page in the user guide's table of contents.
        source[0] = source[0].replace(
            "\n   parallelism\n", "\n   parallelism\n   ../threading\n"
        )


def _reread_when_threading_changes(app, env, added, changed, removed):
    # The two pages that mention threading.md depend on whether it exists.
    if "threading" in added | changed | removed:
        return [USER_GUIDE_INDEX, PARALLELISM_PAGE]
    return []


# :ref:`text <label>` or :ref:`label`
_REF = re.compile(r":ref:`(?:([^`<]*?)\s*<[^`>]+>|([^`]+))`")


def _unlink_foreign_refs(app, what, name, obj, options, lines):
    if app.config.intersphinx_mapping:
        return
    module = getattr(obj, "__module__", None) or ""
    if not module.startswith("sklearn"):
        return

    def plain(match):
        # A titled reference keeps its title; a bare label (often a gallery
        # page's file name) reads better as where it lives.
        return match.group(1) or "scikit-learn's documentation"

    for i, line in enumerate(lines):
        lines[i] = _REF.sub(plain, line)


# Shapes in docstrings, such as "of shape (n_features_in_,)" or "(n_samples,
# *input_shape)": to reStructuredText, a word ending in "_" is a link to a
# target of that name, and "*" starts emphasis; neither is meant.
_PARENS = re.compile(r"\(([^()]*)\)")
_SHAPE_NAME = re.compile(r"(?<![`\w*])(\*?[A-Za-z]\w*_|\*[A-Za-z]\w*)(?![\w`*])")


_LITERAL = re.compile(r"(``.*?``)")


def _quote_shape_names(app, what, name, obj, options, lines):
    def quote(match):
        return "(" + _SHAPE_NAME.sub(r"``\1``", match.group(1)) + ")"

    for i, line in enumerate(lines):
        if "shape" in line:
            # Odd pieces are ``literals`` already: left as they are.
            pieces = _LITERAL.split(line)
            pieces[::2] = [_PARENS.sub(quote, piece) for piece in pieces[::2]]
            lines[i] = "".join(pieces)


def setup(app):
    app.add_config_value("skae_benchmark", None, "env")
    app.connect("source-read", _fill_placeholders)
    app.connect("env-get-outdated", _reread_when_threading_changes)
    app.connect("autodoc-process-docstring", _unlink_foreign_refs)
    app.connect("autodoc-process-docstring", _quote_shape_names)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
