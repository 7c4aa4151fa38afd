"""A claim's history file (refimpl.lab.history): its form, its errors, and
the claims' own files."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from refimpl import claims
from refimpl.claims import _base as B
from refimpl.errors import UsageError
from refimpl.lab.claim import Disclosure
from refimpl.lab.history import format_history, read_history

FILE = """# x: disclosed protocol changes

Free text before the first section is not read.

## 2026-01-02 (commit abc)

Change: seeds 10 -> 20,
wrapped onto a second line

Reason: power

Earlier: PASS (p = 0.01)

## 2026-02-03

Earlier: FAIL

Change: alpha 1 -> 0.8

Reason: a review
"""


def _write(tmp_path, text):
    path = tmp_path / "x.md"
    path.write_text(text)
    return path


def test_sections_read_as_disclosures_in_order(tmp_path):
    first, second = read_history(_write(tmp_path, FILE))
    assert first == Disclosure(
        "2026-01-02 (commit abc)",
        "seeds 10 -> 20, wrapped onto a second line",
        "power",
        "PASS (p = 0.01)",
    )
    assert second == Disclosure("2026-02-03", "alpha 1 -> 0.8", "a review", "FAIL")
    assert read_history(_write(tmp_path, "# x\n\nno section yet\n")) == ()


@pytest.mark.parametrize(
    "text, message",
    [
        ("## d\n\nChange: a\n\nReason: b\n", "section 'd' has no Earlier paragraph"),
        ("## d\n\nChange: a\n\nWhy: b\n\nReason: b\n\nEarlier: c\n", "got 'Why: b'"),
        ("## d\n\nChange: a\n\nChange: b\n\nReason: b\n\nEarlier: c\n", "each once"),
        ("## d\n\nChange a\n", "must start with one of"),
    ],
)
def test_a_malformed_section_is_refused_naming_file_and_section(tmp_path, text, message):
    path = _write(tmp_path, text)
    with pytest.raises(UsageError, match=message) as err:
        read_history(path)
    assert str(path) in str(err.value)


def test_a_missing_file_is_refused(tmp_path):
    with pytest.raises(UsageError, match="no history file"):
        read_history(tmp_path / "none.md")


_words = st.lists(
    st.text("abcxyz019-+=()[].,:;'|/<>*", min_size=1, max_size=30), min_size=1, max_size=40
)
_field = _words.map(" ".join)


@given(
    st.lists(
        st.builds(Disclosure, _field.filter(lambda s: s.strip() == s), _field, _field, _field),
        max_size=4,
    ),
    st.integers(20, 120),
)
def test_format_then_read_gives_the_disclosures_back(tmp_path_factory, disclosures, width):
    path = tmp_path_factory.mktemp("h") / "x.md"
    path.write_text(format_history("x", disclosures, width))
    assert read_history(path) == tuple(disclosures)


def test_every_history_file_belongs_to_a_claim_that_reads_it():
    files = {p.stem for p in B.HISTORY.glob("*.md")}
    assert files <= set(claims.names())
    for name in claims.names():
        declared = claims.load(name).PROTOCOL.disclosures
        assert declared == (B.history(name) if name in files else ())
        assert all(d.date and d.change and d.reason and d.earlier for d in declared)
