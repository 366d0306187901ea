"""Every ``limen ... --help`` speaks to users: no project-internal references (issues, notes)."""

import argparse
import re

from limen.verify.cli import build_parser


def _parsers(parser, prefix="limen"):
    yield prefix, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _parsers(sub, f"{prefix} {name}")


def test_help_texts_have_no_internal_references():
    seen = []
    for name, parser in _parsers(build_parser()):
        seen.append(name)
        text = parser.format_help()
        assert not re.search(r"\bissues?\b|digest|shared/docs", text, re.IGNORECASE), name
    assert "limen bench subliminal" in seen and "limen check" in seen
