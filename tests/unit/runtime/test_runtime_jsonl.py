"""The one JSON-lines log and its one rule: a torn last line never happened; damage before it is an error."""
from __future__ import annotations

import pytest

from nas.runtime.errors import UserError
from nas.runtime.jsonl import JsonlWriter, append_jsonl, read_jsonl, read_log, repair

WHOLE = '{"i": 0}\n{"i": 1}\n'


@pytest.mark.parametrize("tail", ['{"i": 2, "tok', '{"i": 2}', '{"i": 2, "tok\n', "   "])
def test_a_torn_last_line_is_skipped_when_read_and_cut_off_before_appending(tmp_path, tail):
    log = tmp_path / "log.jsonl"
    log.write_text(WHOLE + tail)
    assert read_log(log) == ([{"i": 0}, {"i": 1}], True)
    assert read_jsonl(log) == [{"i": 0}, {"i": 1}]
    append_jsonl(log, {"i": 3})
    assert log.read_text() == WHOLE + '{"i": 3}\n'
    assert read_log(log) == ([{"i": 0}, {"i": 1}, {"i": 3}], False)


def test_the_writer_and_repair_follow_the_same_rule(tmp_path):
    log = tmp_path / "sub" / "log.jsonl"
    assert read_log(log) == ([], False) and repair(log) == 0  # no log yet: no records
    with JsonlWriter(log) as w:
        w.write_many([{"i": 0}, {"i": 1}])
        w.write_many([])
    with open(log, "a") as f:
        f.write('{"i": 2, "to')
    assert repair(log) == 2 and log.read_text() == WHOLE
    assert repair(log) == 2 and log.read_text() == WHOLE
    with open(log, "a") as f:
        f.write('{"i": 2, "to')
    with JsonlWriter(log) as w:
        w.write({"i": 2})
    assert read_log(log) == ([{"i": 0}, {"i": 1}, {"i": 2}], False)
    with JsonlWriter(log) as w, pytest.raises(ValueError):
        w.write({"i": float("nan")})  # strict JSON: a NaN is the caller's to turn into None
    assert read_log(log) == ([{"i": 0}, {"i": 1}, {"i": 2}], False)


@pytest.mark.parametrize("middle", ['{"i": 1, "tok', "", "[1, 2]", "\xff"])
def test_damage_before_the_last_line_is_an_error_naming_file_and_line(tmp_path, middle):
    log = tmp_path / "log.jsonl"
    log.write_bytes(('{"i": 0}\n' + middle + '\n{"i": 2}\n').encode("utf-8", "surrogateescape")
                    if middle != "\xff" else b'{"i": 0}\n\xff\n{"i": 2}\n')
    before = log.read_bytes()
    for act in (read_log, read_jsonl, repair, lambda p: append_jsonl(p, {"i": 3})):
        with pytest.raises(UserError, match="line 2 is not a JSON object") as err:
            act(log)
        assert str(err.value).startswith(str(log))
    assert log.read_bytes() == before  # never cut back past whole records


def test_a_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="is a directory"):
        read_log(tmp_path)
